package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/hybrid/helmext"
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
	readyBefore, rolloutsBefore := histogramCount(t, "dittofs_server_time_to_ready_seconds", ""), histogramCount(t, "dittofs_server_rollout_duration_seconds", "RollingOut")
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
	assert.Equal(t, readyBefore+1, histogramCount(t, "dittofs_server_time_to_ready_seconds", ""), "one creation reached Ready")
	assert.Equal(t, rolloutsBefore, histogramCount(t, "dittofs_server_rollout_duration_seconds", "RollingOut"), "a creation's rollout is not a rollout")

	// A spec change that reaches the pod rolls it out: one rollout observed once it is done.
	updateServer(t, ns, "watched", func(ds *v1alpha1.DittoServer) { ds.Spec.Logging = &v1alpha1.LoggingSpec{Level: "DEBUG"} })
	waitCondition(t, ns, "watched", specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonRollingOut)
	markStatefulSetReady(t, ns, "watched")
	waitCondition(t, ns, "watched", specs.ConditionReady, metav1.ConditionTrue, "")
	eventually(t, "the rollout observed", func() error {
		if got := histogramCount(t, "dittofs_server_rollout_duration_seconds", "RollingOut"); got != rolloutsBefore+1 {
			return fmt.Errorf("%d rollouts observed, want %d", got, rolloutsBefore+1)
		}
		return nil
	})
	assert.Equal(t, readyBefore+1, histogramCount(t, "dittofs_server_time_to_ready_seconds", ""), "Ready again after a rollout is not a creation")

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
	problems, err := testutil.GatherAndLint(metrics.Registry, "dittofs_server_ready", "dittofs_server_condition",
		"dittofs_server_time_to_ready_seconds", "dittofs_server_rollout_duration_seconds",
		"dittofs_api_request_duration_seconds", "dittofs_helm_release_failures_total")
	require.NoError(t, err)
	require.Empty(t, problems)
}

// histogramCount is the number of observations of a histogram in the operator's registry (with
// the given reason label, "" for none).
func histogramCount(t *testing.T, name, reason string) uint64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			r := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					r = l.GetValue()
				}
			}
			if r == reason {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// TestHelmReleaseFailures: a Helm install that fails (a Service of the same name that Helm does
// not own is in the way) is counted in dittofs_helm_release_failures_total{action="install"}.
func TestHelmReleaseFailures(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	squatter := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "blocked-api"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "x", Port: 1}}}}
	require.NoError(t, k8s.Create(ctx(), squatter))
	before := testutil.ToFloat64(helmext.ReleaseFailures.WithLabelValues("install"))
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "blocked")))
	waitCondition(t, ns, "blocked", specs.ConditionReleaseFailed, metav1.ConditionTrue, "")
	assert.Greater(t, testutil.ToFloat64(helmext.ReleaseFailures.WithLabelValues("install")), before)

	require.NoError(t, k8s.Delete(ctx(), squatter))
	markStatefulSetReady(t, ns, "blocked")
	waitCondition(t, ns, "blocked", specs.ConditionReady, metav1.ConditionTrue, "")
}
