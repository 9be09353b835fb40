package packaging

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dittofs/dittofs-operator/test/apiserver"
)

var prometheusRuleCRD = filepath.Join(apiserver.RepoRoot(), "bin", "crds", "prometheus-operator-v0.94.1", "monitoring.coreos.com_prometheusrules.yaml")

// TestPrometheusRuleInstalls: `kubectl apply -k config/prometheus` (docs/MONITORING.md) where the
// Prometheus operator is missing fails with "no matches for kind", and where its real
// PrometheusRule CRD is installed the rule is accepted with strict field validation (an
// unknown or misplaced field would be refused, not silently pruned).
func TestPrometheusRuleInstalls(t *testing.T) {
	_, err := os.Stat(prometheusRuleCRD)
	require.NoError(t, err, "run make monitoring-crds")
	objs := kustomizeBuild(t, "config/prometheus")
	require.Len(t, objs, 1)
	rule := objs[0]
	require.Equal(t, "PrometheusRule", rule.GetKind())
	ctx := t.Context()
	rule.SetNamespace("default")

	err = env.Client.Create(ctx, rule.DeepCopy(), client.DryRunAll)
	require.Error(t, err, "no PrometheusRule CRD yet")
	assert.True(t, meta.IsNoMatchError(err), "a missing CRD says so: %v", err)

	crds, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{prometheusRuleCRD}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = envtest.UninstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: crds}) })
	if m, ok := env.Client.RESTMapper().(meta.ResettableRESTMapper); ok {
		m.Reset()
	}
	require.NoError(t, env.Client.Create(ctx, rule.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict")),
		"the real CRD accepts the rule as written")

	broken := rule.DeepCopy()
	groups := broken.Object["spec"].(map[string]any)["groups"].([]any)
	groups[0].(map[string]any)["rules"].([]any)[0].(map[string]any)["for_"] = "10m"
	err = env.Client.Create(ctx, broken, client.DryRunAll, client.FieldValidation("Strict"))
	assert.ErrorContains(t, err, "for_", "strict validation refuses an unknown field: the check above can fail")
}
