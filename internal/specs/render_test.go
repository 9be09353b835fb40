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
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testRenderer(t testing.TB) *Renderer {
	t.Helper()
	chrt, err := LoadChart(charts.FS, "helm-charts/dittoserver")
	require.NoError(t, err)
	return &Renderer{Chart: chrt, OperatorNamespace: "dittofs-operator-system"} // as in-cluster, with config/default
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

// TestNetworkPolicy: each server's pod accepts the REST API and metrics only from the
// operator's namespace and the sources the spec adds; the file ports from any source unless
// spec.networkPolicy.fileFrom restricts them; an API exposed on purpose is open; the policy goes
// with spec.networkPolicy.enabled: false.
func TestNetworkPolicy(t *testing.T) {
	monitoring := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{corev1.LabelMetadataName: "monitoring"}}}
	nodes := networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/16"}}
	operator := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{corev1.LabelMetadataName: "dittofs-operator-system"}}}
	type rule struct {
		ports []int32
		from  []networkingv1.NetworkPolicyPeer // nil: any source
	}
	cases := []struct {
		name     string
		operator string
		spec     func(*v1alpha1.DittoServerSpec)
		want     []rule // nil with none: no policy
		none     bool
	}{
		{name: "defaults", operator: "dittofs-operator-system",
			want: []rule{{ports: []int32{12049}}, {ports: []int32{8080}, from: []networkingv1.NetworkPolicyPeer{operator}},
				{ports: []int32{9090}, from: []networkingv1.NetworkPolicyPeer{operator}}}},
		{name: "SMB and metrics, a monitoring namespace, file restricted to the nodes", operator: "dittofs-operator-system",
			spec: func(s *v1alpha1.DittoServerSpec) {
				s.SMB = &v1alpha1.SMBSpec{Enabled: true}
				s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true)}
				s.NetworkPolicy = &v1alpha1.NetworkPolicySpec{FileFrom: []networkingv1.NetworkPolicyPeer{nodes},
					MetricsFrom: []networkingv1.NetworkPolicyPeer{monitoring}}
			},
			want: []rule{
				{ports: []int32{12049, 1445}, from: []networkingv1.NetworkPolicyPeer{nodes}},
				{ports: []int32{8080}, from: []networkingv1.NetworkPolicyPeer{operator}},
				{ports: []int32{9090}, from: []networkingv1.NetworkPolicyPeer{operator, monitoring}},
			}},
		{name: "API exposed on purpose", operator: "dittofs-operator-system",
			spec: func(s *v1alpha1.DittoServerSpec) {
				s.ControlPlane = &v1alpha1.ControlPlaneSpec{Service: &v1alpha1.APIServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
			},
			want: []rule{{ports: []int32{12049}}, {ports: []int32{8080}}, {ports: []int32{9090}, from: []networkingv1.NetworkPolicyPeer{operator}}}},
		{name: "operator outside the cluster, API from a listed source",
			spec: func(s *v1alpha1.DittoServerSpec) {
				s.NetworkPolicy = &v1alpha1.NetworkPolicySpec{APIFrom: []networkingv1.NetworkPolicyPeer{nodes}}
			},
			want: []rule{{ports: []int32{12049}}, {ports: []int32{8080}, from: []networkingv1.NetworkPolicyPeer{nodes}}}},
		{name: "operator outside the cluster, nothing listed: no API rule",
			want: []rule{{ports: []int32{12049}}}},
		{name: "disabled", operator: "dittofs-operator-system", none: true,
			spec: func(s *v1alpha1.DittoServerSpec) {
				s.NetworkPolicy = &v1alpha1.NetworkPolicySpec{Enabled: ptr.To(false)}
			}},
	}
	chrt := testRenderer(t).Chart
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := loadSample(t, "dittofs_v1alpha1_dittoserver.yaml")
			if tc.spec != nil {
				tc.spec(&ds.Spec)
			}
			r := &Renderer{Chart: chrt, OperatorNamespace: tc.operator}
			rendered, err := r.Render(ds)
			require.NoError(t, err)
			doc, ok := rendered.Manifests["dittoserver/templates/networkpolicy.yaml"]
			if tc.none {
				assert.False(t, ok, "no NetworkPolicy: %s", doc)
				return
			}
			require.True(t, ok, "a NetworkPolicy is rendered")
			np := networkingv1.NetworkPolicy{}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &np))
			assert.Equal(t, ds.Name, np.Name)
			assert.Equal(t, SelectorLabels(ds), np.Spec.PodSelector.MatchLabels, "selects the server's pod")
			assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
			var got []rule
			for _, in := range np.Spec.Ingress {
				r := rule{from: in.From}
				for _, p := range in.Ports {
					r.ports = append(r.ports, p.Port.IntVal)
				}
				got = append(got, r)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestOwner: every object the chart renders is controlled by its DittoServer, as the Helm
// library's owner post-renderer (now off) made it; an object Helm keeps on uninstall names its
// owner in annotations instead, so the garbage collector keeps it too.
func TestOwner(t *testing.T) {
	objects := func(t *testing.T, ds *v1alpha1.DittoServer) []*metav1.PartialObjectMetadata {
		t.Helper()
		rendered, err := testRenderer(t).Render(ds)
		require.NoError(t, err)
		var out []*metav1.PartialObjectMetadata
		for name, content := range rendered.Manifests {
			for _, doc := range strings.Split(content, "\n---") {
				if strings.TrimSpace(doc) == "" {
					continue
				}
				obj := &metav1.PartialObjectMetadata{}
				require.NoError(t, yaml.Unmarshal([]byte(doc), obj), name)
				out = append(out, obj)
			}
		}
		require.Len(t, out, 6, "ConfigMap, 4 Services, NetworkPolicy")
		return out
	}
	ds := server(nil)
	ds.UID = "8d3b0a4e-0000-4000-8000-000000000001"
	want := *metav1.NewControllerRef(ds, v1alpha1.GroupVersionKind())
	for _, obj := range objects(t, ds) {
		assert.Equal(t, []metav1.OwnerReference{want}, obj.OwnerReferences, "%s %s", obj.Kind, obj.Name)
		assert.NotContains(t, obj.Annotations, "operator-sdk/primary-resource", obj.Name)
	}

	t.Run("kept on uninstall", func(t *testing.T) {
		kept := server(func(s *v1alpha1.DittoServerSpec) {
			s.ChartValues = chartValues(t, map[string]any{"annotations": map[string]any{"helm.sh/resource-policy": "keep"}})
		})
		kept.UID = ds.UID
		for _, obj := range objects(t, kept) {
			assert.Empty(t, obj.OwnerReferences, obj.Name)
			assert.Equal(t, "ns/ds", obj.Annotations["operator-sdk/primary-resource"], obj.Name)
			assert.Equal(t, "DittoServer.dittofs.dittofs.com", obj.Annotations["operator-sdk/primary-resource-type"], obj.Name)
			assert.Equal(t, "keep", obj.Annotations["helm.sh/resource-policy"], obj.Name)
		}
	})

	t.Run("no uid, no owner", func(t *testing.T) {
		for _, obj := range objects(t, server(nil)) {
			assert.Empty(t, obj.OwnerReferences, obj.Name)
		}
		_, err := Translator{Chart: testRenderer(t).Chart}.Translate(t.Context(), &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": v1alpha1.DittoServerKind,
			"metadata": map[string]any{"name": "ds", "namespace": "ns"},
		}})
		require.ErrorContains(t, err, "DittoServer ns/ds has no metadata.uid", "the Helm path never installs objects without an owner")
	})
}
