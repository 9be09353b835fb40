package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// TestRequestsToConverge logs the API requests one DittoServer costs, from create to Ready
// and while idle (the benchmark measures the same on a kwok cluster).
func TestRequestsToConverge(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
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
	mgr.Requests.Reset()
	time.Sleep(3 * time.Second)
	require.Zero(t, mgr.Requests.Total(), "requests while idle:\n%s", mgr.Requests)
}
