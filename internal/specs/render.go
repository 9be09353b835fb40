package specs

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Renderer renders the operand chart in-process, along the same path as the Helm reconciler
// (overrideValues -> Translator -> coalesce with the chart's values.yaml -> template engine).
// The Go controller uses it to know the config.yaml the current spec must produce; the golden
// and conformance tests use it to see exactly what the operator would deploy.
type Renderer struct {
	Chart     *chart.Chart
	Overrides map[string]string
	// OperatorNamespace: see Translator.
	OperatorNamespace string
}

// Rendered is the output of one render: manifests by template name.
type Rendered struct {
	Manifests map[string]string
}

// Render renders the chart for ds.
func (r *Renderer) Render(ds *v1alpha1.DittoServer) (*Rendered, error) {
	withOverrides, err := ApplyOverrides(ds, r.Overrides)
	if err != nil {
		return nil, err
	}
	vals, err := TranslateValues(r.Chart, withOverrides, r.OperatorNamespace)
	if err != nil {
		return nil, err
	}
	// TranslateValues checked vals against the schema (compiled once); Helm would again.
	top, err := chartutil.ToRenderValuesWithSchemaValidation(r.Chart, vals, chartutil.ReleaseOptions{
		Name: ds.Name, Namespace: ds.Namespace, IsInstall: false, IsUpgrade: true, Revision: 1,
	}, chartutil.DefaultCapabilities, true)
	if err != nil {
		return nil, fmt.Errorf("building render values: %w", err)
	}
	files, err := engine.Render(r.Chart, top)
	if err != nil {
		return nil, invalidSpec("spec.chartValues", "the chart does not render: "+oneLine(err.Error()))
	}
	out := &Rendered{Manifests: map[string]string{}}
	for name, content := range files {
		if strings.HasPrefix(path.Base(name), "_") || strings.TrimSpace(content) == "" {
			continue
		}
		out.Manifests[name] = content
	}
	return out, nil
}

// ConfigMap decodes the rendered ConfigMap.
func (r *Rendered) ConfigMap() (*corev1.ConfigMap, error) {
	for name, content := range r.Manifests {
		if path.Base(name) != "configmap.yaml" {
			continue
		}
		cm := &corev1.ConfigMap{}
		if err := yaml.Unmarshal([]byte(content), cm); err != nil {
			return nil, fmt.Errorf("decoding rendered %s: %w", name, err)
		}
		return cm, nil
	}
	return nil, fmt.Errorf("the chart rendered no configmap.yaml")
}

// ConfigYAML is the rendered DittoFS config.yaml.
func (r *Rendered) ConfigYAML() (string, error) {
	cm, err := r.ConfigMap()
	if err != nil {
		return "", err
	}
	cfg, ok := cm.Data[ConfigFileName]
	if !ok {
		return "", fmt.Errorf("the rendered ConfigMap has no %s", ConfigFileName)
	}
	return cfg, nil
}

// LoadChart loads the chart in directory dir of fsys. A leading "helm-charts/" is accepted, so
// watches.yaml can name the path as it is in the repository.
func LoadChart(fsys fs.FS, dir string) (*chart.Chart, error) {
	dir = strings.TrimPrefix(path.Clean(dir), "helm-charts/")
	var files []*loader.BufferedFile
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, dir+"/")
		if strings.HasSuffix(rel, ".go") {
			return nil
		}
		files = append(files, &loader.BufferedFile{Name: rel, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading chart %q: %w", dir, err)
	}
	chrt, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("loading chart %q: %w", dir, err)
	}
	return chrt, nil
}
