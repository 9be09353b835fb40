package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// assertBothOwners checks that the Go fields and the Helm conditions are all in the status.
func assertBothOwners(t *testing.T, ds *v1alpha1.DittoServer) {
	t.Helper()
	assert.NotEmpty(t, ds.Status.Phase, "Go: phase")
	assert.Equal(t, ds.Generation, ds.Status.ObservedGeneration, "Go: observedGeneration")
	ready := condition(ds, specs.ConditionReady)
	require.NotNil(t, ready, "Go: Ready")
	assert.Equal(t, ds.Generation, ready.ObservedGeneration, "Go: Ready.observedGeneration")
	for _, typ := range []string{specs.ConditionInitialized, specs.ConditionDeployed, specs.ConditionIrreconcilable, specs.ConditionReleaseFailed} {
		c := condition(ds, typ)
		require.NotNil(t, c, "Helm: %s", typ)
		assert.NotEmpty(t, c.Reason, "Helm: %s reason", typ)
	}
	require.NotNil(t, ds.Status.DeployedRelease, "Helm: deployedRelease")
}

func TestStatusOwnersCoexist(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "both")))
	markStatefulSetReady(t, ns, "both")

	// install
	ds := waitCondition(t, ns, "both", specs.ConditionReady, metav1.ConditionTrue, "")
	assertBothOwners(t, ds)

	// upgrade
	updateServer(t, ns, "both", func(ds *v1alpha1.DittoServer) { ds.Spec.NFSPort = ptrInt32(2049) })
	eventually(t, "upgrade reflected by both owners", func() error {
		ds = getServer(t, ns, "both")
		d := condition(ds, specs.ConditionDeployed)
		r := condition(ds, specs.ConditionReady)
		if d == nil || d.Reason != "UpgradeSuccessful" || r == nil || r.ObservedGeneration != ds.Generation || r.Status != metav1.ConditionTrue {
			return assert.AnError
		}
		return nil
	})
	assertBothOwners(t, ds)
	assert.Equal(t, "both-file."+ns+".svc:2049", ds.Status.NFSEndpoint)

	// induced render failure: chart values that break values.schema.json
	bad, _ := json.Marshal(map[string]any{"ports": map[string]any{"nfs": 70000}})
	updateServer(t, ns, "both", func(ds *v1alpha1.DittoServer) { ds.Spec.ChartValues = &apiextensionsv1.JSON{Raw: bad} })
	ds = waitCondition(t, ns, "both", specs.ConditionIrreconcilable, metav1.ConditionTrue, "")
	ds = waitCondition(t, ns, "both", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonRenderFailed)
	assert.Contains(t, condition(ds, specs.ConditionReady).Message, "spec.chartValues")
	assert.Contains(t, condition(ds, specs.ConditionIrreconcilable).Message, "spec.chartValues")
	assert.Equal(t, v1alpha1.PhaseFailed, ds.Status.Phase)
	assertBothOwners(t, ds)

	// recovery
	updateServer(t, ns, "both", func(ds *v1alpha1.DittoServer) { ds.Spec.ChartValues = nil })
	ds = waitCondition(t, ns, "both", specs.ConditionReady, metav1.ConditionTrue, "")
	ds = waitCondition(t, ns, "both", specs.ConditionIrreconcilable, metav1.ConditionFalse, "")
	assertBothOwners(t, ds)
	assert.Equal(t, v1alpha1.PhaseRunning, ds.Status.Phase)
}

func ptrInt32(v int32) *int32 { return &v }

// TestPrinterColumns: kubectl get shows whether a server is available and why it is (not)
// Ready; -o wide shows the image it really runs.
func TestPrinterColumns(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "columns")))
	table := func() (map[string]string, map[string]string) {
		t.Helper()
		hc, err := rest.HTTPClientFor(env.Config)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodGet, strings.TrimRight(env.Config.Host, "/")+
			"/apis/dittofs.dittofs.com/v1alpha1/namespaces/"+ns+"/dittoservers/columns", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		tbl := &metav1.Table{}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(tbl))
		require.Len(t, tbl.Rows, 1)
		cells, priority := map[string]string{}, map[string]string{}
		for i, col := range tbl.ColumnDefinitions {
			cells[col.Name] = fmt.Sprint(tbl.Rows[0].Cells[i])
			priority[col.Name] = fmt.Sprint(col.Priority)
		}
		return cells, priority
	}
	waitCondition(t, ns, "columns", specs.ConditionAvailable, metav1.ConditionFalse, specs.ReasonPodsNotReady)
	cells, priority := table()
	assert.Equal(t, "False", cells["Available"])
	assert.NotEqual(t, specs.ReasonAllReady, cells["Reason"], "the Reason column says why the server is not Ready")
	assert.NotEmpty(t, cells["Reason"])
	assert.Equal(t, v1alpha1.DefaultImage, cells["Image"], "the image the pod template runs, though spec.image is empty")
	assert.Equal(t, "1", priority["Image"], "Image is a -o wide column")

	markStatefulSetReady(t, ns, "columns")
	waitCondition(t, ns, "columns", specs.ConditionReady, metav1.ConditionTrue, "")
	cells, _ = table()
	assert.Equal(t, "True", cells["Available"])
	assert.Equal(t, specs.ReasonAllReady, cells["Reason"])
}

// TestStatusAddresses: status.addresses has the -file Service's cluster IP, then the ingress its
// load balancer reports (the Service's status change brings the server back at once).
func TestStatusAddresses(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "addr")
	ds.Spec.Service = &v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}
	require.NoError(t, k8s.Create(ctx(), ds))
	markStatefulSetReady(t, ns, "addr")
	waitCondition(t, ns, "addr", specs.ConditionReady, metav1.ConditionTrue, "")

	svc := &corev1.Service{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "addr-file"}, svc))
	require.NotEmpty(t, svc.Spec.ClusterIP)
	eventually(t, "status.addresses is the cluster IP", func() error {
		if got := getServer(t, ns, "addr").Status.Addresses; !slices.Equal(got, []string{svc.Spec.ClusterIP}) {
			return fmt.Errorf("status.addresses %v", got)
		}
		return nil
	})

	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}, {Hostname: "files.example.com"}}
	require.NoError(t, k8s.Status().Update(ctx(), svc))
	eventually(t, "status.addresses has the load balancer's ingress", func() error {
		want := []string{svc.Spec.ClusterIP, "203.0.113.7", "files.example.com"}
		if got := getServer(t, ns, "addr").Status.Addresses; !slices.Equal(got, want) {
			return fmt.Errorf("status.addresses %v, want %v", got, want)
		}
		return nil
	})
}
