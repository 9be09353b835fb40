// Package prometheus checks the alerts of config/prometheus and the dashboard of config/grafana:
// promtool (built from the Go module proxy by hack/build-promtool.sh) checks the rules and runs
// their unit tests (testdata/alerts_test.yaml); the metrics they use are listed by
// ReferencedMetrics, which the e2e test compares with the real server's and the operator's
// /metrics.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// promtool is bin/tools/promtool-<version>; the test skips without it (make test builds it).
func promtool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "tools", "promtool-"+PrometheusModuleVersion)
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s is missing: build it with `bash hack/build-promtool.sh` (make promtool)", bin)
	}
	return bin
}

// TestAlerts: the PrometheusRule's groups are valid rules, and each alert fires when its unit
// test says, with the labels and annotations a receiver gets.
func TestAlerts(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	rules, err := RulesFile(apiserver.RepoRoot())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644))
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644))

	check := exec.Command(bin, "check", "rules", "rules.yaml")
	check.Dir = dir
	out, err := check.CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)

	run := exec.Command(bin, "test", "rules", "alerts_test.yaml")
	run.Dir = dir
	out, err = run.CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
	t.Logf("promtool:\n%s", out)
}

// TestEveryAlertIsTested: an alert without a unit test fails here.
func TestEveryAlertIsTested(t *testing.T) {
	alerts, err := Alerts(apiserver.RepoRoot())
	require.NoError(t, err)
	require.NotEmpty(t, alerts)
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	require.NoError(t, err)
	for _, a := range alerts {
		require.Contains(t, string(tests), "alertname: "+a, "alert %s has no promtool test in testdata/alerts_test.yaml", a)
	}
}

// TestDashboard: the dashboard is valid JSON with panels whose queries name metrics.
func TestDashboard(t *testing.T) {
	queries, err := DashboardQueries(apiserver.RepoRoot())
	require.NoError(t, err)
	require.NotEmpty(t, queries)
	for _, q := range queries {
		require.NotEmpty(t, metricNames(q), "query %q names no metric", q)
	}
}
