package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// TestServerMetrics: the operator's /metrics says, per server, whether it is Ready and each
// condition with its reason; a server that goes away takes its series with it.
func TestServerMetrics(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "watched")))
	waitCondition(t, ns, "watched", specs.ConditionAvailable, metav1.ConditionFalse, specs.ReasonPodsNotReady)

	series := func(metric string) (string, error) {
		families, err := metrics.Registry.Gather()
		if err != nil {
			return "", err
		}
		var out []string
		for _, f := range families {
			if f.GetName() != metric {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["namespace"] != ns {
					continue
				}
				out = append(out, fmt.Sprintf("%s{type=%s,status=%s,reason=%s}=%g", labels["name"], labels["type"], labels["status"], labels["reason"], m.GetGauge().GetValue()))
			}
		}
		return strings.Join(out, " "), nil
	}
	expect := func(what, metric string, want ...string) {
		t.Helper()
		eventually(t, what, func() error {
			got, err := series(metric)
			if err != nil {
				return err
			}
			for _, w := range want {
				if !strings.Contains(got, w) {
					return fmt.Errorf("%s has no %s: %s", metric, w, got)
				}
			}
			return nil
		})
	}
	expect("not ready yet", "dittofs_server_ready", "watched{type=,status=,reason=}=0")
	expect("the reason is there", "dittofs_server_condition", "watched{type=Available,status=False,reason=PodsNotReady}=1")

	markStatefulSetReady(t, ns, "watched")
	waitCondition(t, ns, "watched", specs.ConditionReady, metav1.ConditionTrue, "")
	expect("ready", "dittofs_server_ready", "watched{type=,status=,reason=}=1")
	expect("every condition", "dittofs_server_condition",
		"watched{type=Ready,status=True,reason=AllComponentsReady}=1",
		"watched{type=Available,status=True,reason=PodsReady}=1",
		"watched{type=Deployed,status=True,")
	got, err := series("dittofs_server_condition")
	require.NoError(t, err)
	require.NotContains(t, got, "reason=PodsNotReady", "an old reason is not kept: %s", got)

	require.NoError(t, k8s.Delete(ctx(), getServer(t, ns, "watched")))
	waitGone(t, ns, "watched")
	eventually(t, "the series go with the server", func() error {
		got, err := series("dittofs_server_ready")
		if err != nil {
			return err
		}
		if got != "" {
			return fmt.Errorf("left: %q", got)
		}
		return nil
	})
	// testutil is the documented way to lint what a registry exposes.
	problems, err := testutil.GatherAndLint(metrics.Registry, "dittofs_server_ready", "dittofs_server_condition")
	require.NoError(t, err)
	require.Empty(t, problems)
}
