package specs

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
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

// TestAdminAPIExposure: spec.service exposes the file protocols only; the REST admin API stays
// ClusterIP (inside the cluster) unless spec.controlPlane.service exposes it on purpose, with
// its own annotations.
func TestAdminAPIExposure(t *testing.T) {
	r := testRenderer(t)
	services := func(ds *v1alpha1.DittoServer) map[string]corev1.Service {
		t.Helper()
		rendered, err := r.Render(ds)
		require.NoError(t, err)
		out := map[string]corev1.Service{}
		for _, doc := range strings.Split(rendered.Manifests["dittoserver/templates/services.yaml"], "\n---") {
			svc := corev1.Service{}
			require.NoError(t, yaml.Unmarshal([]byte(doc), &svc))
			if svc.Name != "" {
				out[strings.TrimPrefix(svc.Name, ds.Name)] = svc
			}
		}
		return out
	}
	ds := loadSample(t, "dittofs_v1alpha1_dittoserver_s3.yaml")
	require.Equal(t, corev1.ServiceTypeLoadBalancer, ds.Spec.Service.Type, "the sample exposes its file service")
	got := services(ds)
	assert.Equal(t, corev1.ServiceTypeLoadBalancer, got["-file"].Spec.Type)
	assert.Contains(t, got["-file"].Annotations, "service.beta.kubernetes.io/aws-load-balancer-type")
	assert.Equal(t, corev1.ServiceTypeClusterIP, got["-api"].Spec.Type, "the admin API does not ride on the file service's exposure")
	assert.NotContains(t, got["-api"].Annotations, "service.beta.kubernetes.io/aws-load-balancer-type")

	ds.Spec.ControlPlane = &v1alpha1.ControlPlaneSpec{Service: &v1alpha1.APIServiceSpec{
		Type: corev1.ServiceTypeNodePort, Annotations: map[string]string{"team": "storage"}}}
	got = services(ds)
	assert.Equal(t, corev1.ServiceTypeNodePort, got["-api"].Spec.Type, "exposed on purpose")
	assert.Equal(t, "storage", got["-api"].Annotations["team"])
	assert.NotContains(t, got["-file"].Annotations, "team")
}
