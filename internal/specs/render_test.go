package specs

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testRenderer(t testing.TB) *Renderer {
	t.Helper()
	chrt, err := LoadChart(charts.FS, "helm-charts/dittoserver")
	require.NoError(t, err)
	return &Renderer{Chart: chrt}
}

// loadSample reads the DittoServer of a config/samples file.
func loadSample(t testing.TB, file string) *v1alpha1.DittoServer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
	require.NoError(t, err)
	ds := &v1alpha1.DittoServer{}
	require.NoError(t, yaml.UnmarshalStrict(data, ds), "sample %s must match the API exactly", file)
	ds.Namespace = "dittofs"
	return ds
}

// sampleFiles are the DittoServer samples (the seed's shapes).
func sampleFiles(t testing.TB) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "dittofs_v1alpha1_dittoserver*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Base(m))
	}
	return out
}

func TestRenderGolden(t *testing.T) {
	r := testRenderer(t)
	for _, file := range sampleFiles(t) {
		t.Run(file, func(t *testing.T) {
			rendered, err := r.Render(loadSample(t, file))
			require.NoError(t, err)
			names := make([]string, 0, len(rendered.Manifests))
			for n := range rendered.Manifests {
				names = append(names, n)
			}
			sort.Strings(names)
			var b strings.Builder
			for _, n := range names {
				b.WriteString("# Source: " + n + "\n" + strings.TrimSpace(rendered.Manifests[n]) + "\n---\n")
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(file, ".yaml")+".golden")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(golden, []byte(b.String()), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "run go test ./internal/hybrid -run TestRenderGolden -update")
			require.Equal(t, string(want), b.String())
		})
	}
}
