package v1alpha1_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestEveryFieldIsDocumented: kubectl explain has text for every field of the generated CRD
// (the Go doc comment of each field is its description), types from Kubernetes included.
func TestEveryFieldIsDocumented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "dittofs.dittofs.com_dittoservers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, v := range crd.Spec.Versions {
		root := v.Schema.OpenAPIV3Schema
		for _, top := range []string{"spec", "status"} {
			prop := root.Properties[top]
			undocumented(top, &prop, &missing)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d CRD fields have no description (write a doc comment on the Go field, then make manifests):\n  %s",
			len(missing), strings.Join(missing, "\n  "))
	}
}

func undocumented(path string, s *apiextensionsv1.JSONSchemaProps, missing *[]string) {
	if strings.TrimSpace(s.Description) == "" {
		*missing = append(*missing, path)
	}
	for name, p := range s.Properties {
		undocumented(path+"."+name, &p, missing)
	}
	if s.Items != nil && s.Items.Schema != nil {
		for name, p := range s.Items.Schema.Properties {
			undocumented(path+"[]."+name, &p, missing)
		}
	}
}
