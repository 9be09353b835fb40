package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestRequestsToConverge counts the API requests one DittoServer costs, from create to Ready,
// while idle and for a spec change that rolls the pod (the benchmark measures the same on a kwok
// cluster; docs/PERFORMANCE.md has the budget). The bounds are this test's figures: a change
// that costs a request more fails here first.
func TestRequestsToConverge(t *testing.T) {
	// The manager watches only this namespace: servers other tests left elsewhere are not counted.
	ns := newNamespace(t)
	mgr := env.StartManagerWith(t, testenv.ManagerConfig{Namespaces: []string{ns}})
	defer mgr.Stop(t)
	userSecrets(t, ns)
	time.Sleep(500 * time.Millisecond) // let the caches sync
	mgr.Requests.Reset()
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "cost")))
	getStatefulSet(t, ns, "cost")
	markStatefulSetReady(t, ns, "cost")
	waitCondition(t, ns, "cost", specs.ConditionReady, metav1.ConditionTrue, "")
	time.Sleep(time.Second)
	converged := mgr.Requests.Total()
	t.Logf("requests to converge one DittoServer: %d\n%s", converged, mgr.Requests)
	assert.LessOrEqual(t, converged, 18, "requests to converge:\n%s", mgr.Requests)
	testenv.WaitEvent(t, k8s, ns, "cost", specs.EventReady)
	assert.Empty(t, testenv.Events(t, k8s, ns, "cost", specs.EventCreated), "nothing the user must know of was created (no generated credentials)")

	mgr.Requests.Reset()
	time.Sleep(3 * time.Second)
	require.Zero(t, mgr.Requests.Total(), "requests while idle:\n%s", mgr.Requests)

	// A spec change that changes config.yaml: Helm upgrades the ConfigMap, the pod rolls.
	before := configHash(t, ns, "cost")
	ds := updateServer(t, ns, "cost", func(ds *v1alpha1.DittoServer) {
		ds.Spec.Database = &v1alpha1.DatabaseSpec{Type: "sqlite", SQLite: &v1alpha1.SQLiteSpec{Path: "/data/controlplane/other.db"}}
	})
	eventually(t, "a new config hash", func() error {
		if configHash(t, ns, "cost") == before {
			return fmt.Errorf("still %s", before)
		}
		return nil
	})
	markStatefulSetReady(t, ns, "cost")
	eventually(t, "Ready for the new generation", func() error {
		got := getServer(t, ns, "cost")
		if c := condition(got, specs.ConditionReady); got.Status.ObservedGeneration != ds.Generation || c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("observedGeneration %d of %d, Ready %v", got.Status.ObservedGeneration, ds.Generation, c)
		}
		return nil
	})
	time.Sleep(time.Second)
	changed := mgr.Requests.Total()
	t.Logf("requests for a spec change: %d\n%s", changed, mgr.Requests)
	assert.LessOrEqual(t, changed, 15, "requests for a spec change:\n%s", mgr.Requests)
}
