package validation

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// emptyCluster is a cluster without StorageClasses or Secrets.
type emptyCluster struct{}

func (emptyCluster) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
}

func (emptyCluster) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// FuzzValidate: no spec makes the validator panic or fail on its own, and every error it reports
// names the field to fix (the webhook turns "spec.x: ..." into the field path).
func FuzzValidate(f *testing.F) {
	f.Add(`{"storage":{"metadataSize":"1Gi","storageClassName":"fast"}}`)
	f.Add(`{"percona":{"enabled":true,"storageClassName":"x","backup":{"enabled":true,"credentialsSecretRef":{"name":"b"}}},"database":{"postgresSecretRef":{"name":"p","key":"uri"}}}`)
	f.Add(`{"chartValues":{"config":{"controlplane":{"port":1}},"ports":{"nfs":70000}},"identity":{"jwt":{"secretRef":{"name":"j","key":"k"},"issuer":"i"}}}`)
	f.Add(`{"controlPlane":{"port":80},"metrics":{"enabled":true,"port":81},"smb":{"credits":{},"timeouts":{}},"cache":{},"s3":{"credentialsSecretRef":{"secretName":"s"}},"storage":{"metadataSize":"1Gi","contentSize":"1Gi"}}`)
	f.Add(`{"chartValues":null,"storage":null}`)
	chrt, err := specs.LoadChart(charts.FS, "helm-charts/dittoserver")
	if err != nil {
		f.Fatal(err)
	}
	v := &Validator{Reader: emptyCluster{}, SecretReader: emptyCluster{}, Mapper: meta.NewDefaultRESTMapper(nil), Renderer: &specs.Renderer{Chart: chrt}}
	f.Fuzz(func(t *testing.T, spec string) {
		ds := &v1alpha1.DittoServer{}
		if err := json.Unmarshal([]byte(`{"metadata":{"name":"f","namespace":"n"},"spec":`+spec+`}`), ds); err != nil {
			return
		}
		findings, err := v.Validate(context.Background(), ds)
		if err != nil {
			t.Fatalf("validator error for spec %s: %v", spec, err)
		}
		for _, e := range findings.Errors {
			if !strings.HasPrefix(e, "spec.") {
				t.Fatalf("error without a field for spec %s: %q", spec, e)
			}
		}
		if p := findings.Blocking(); p != nil && p.Reason == "" {
			t.Fatalf("a Problem without a reason for spec %s", spec)
		}
	})
}
