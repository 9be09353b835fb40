package helmext

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"text/template"

	sprig "github.com/go-task/slim-sprig/v3"
	"github.com/operator-framework/helm-operator-plugins/pkg/watches"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// LoadWatches reads a watches.yaml (helm-operator-plugins format) whose chart paths point into
// charts, an embedded file system (the operator image carries no chart files on disk). It
// mirrors watches.LoadReader: defaults for watchDependentResources and selector, and
// overrideValues expanded from the environment and as templates.
func LoadWatches(data []byte, charts fs.FS) ([]watches.Watch, error) {
	var ws []watches.Watch
	if err := yaml.Unmarshal(data, &ws); err != nil {
		return nil, fmt.Errorf("parsing watches.yaml: %w", err)
	}
	seen := map[string]bool{}
	for i := range ws {
		w := &ws[i]
		if w.Version == "" || w.Kind == "" {
			return nil, fmt.Errorf("watches.yaml entry %d: version and kind are required", i)
		}
		if seen[w.String()] {
			return nil, fmt.Errorf("watches.yaml: duplicate GVK %s", w.GroupVersionKind)
		}
		seen[w.String()] = true
		chrt, err := specs.LoadChart(charts, w.ChartPath)
		if err != nil {
			return nil, fmt.Errorf("watches.yaml entry %s: %w", w.GroupVersionKind, err)
		}
		w.Chart = chrt
		if w.WatchDependentResources == nil {
			t := true
			w.WatchDependentResources = &t
		}
		if w.Selector == nil {
			w.Selector = &metav1.LabelSelector{}
		}
		if w.OverrideValues, err = ExpandOverrideValues(w.OverrideValues); err != nil {
			return nil, fmt.Errorf("watches.yaml entry %s: %w", w.GroupVersionKind, err)
		}
	}
	return ws, nil
}

// ExpandOverrideValues expands ${ENV} and templates in override values, as helm-operator-plugins
// does for watches.yaml.
func ExpandOverrideValues(in map[string]string) (map[string]string, error) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		tmpl, err := template.New(k).Funcs(sprig.TxtFuncMap()).Parse(os.ExpandEnv(v))
		if err != nil {
			return nil, fmt.Errorf("overrideValues %q: invalid template: %w", k, err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, nil); err != nil {
			return nil, fmt.Errorf("overrideValues %q: %w", k, err)
		}
		out[k] = b.String()
	}
	return out, nil
}
