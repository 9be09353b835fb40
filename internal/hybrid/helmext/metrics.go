package helmext

import (
	helmclient "github.com/operator-framework/helm-operator-plugins/pkg/client"
	"github.com/prometheus/client_golang/prometheus"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ReleaseFailures counts failed Helm actions on the servers' releases. action is install,
// upgrade (the dry run that computes the diff included: it fails when the chart does not
// render), uninstall or reconcile (the repair of drifted objects).
var ReleaseFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "dittofs_helm_release_failures_total",
	Help: "Failed Helm actions on DittoServer releases, by action (install, upgrade, uninstall, reconcile).",
}, []string{"action"})

func init() {
	metrics.Registry.MustRegister(ReleaseFailures)
	for _, a := range []string{"install", "upgrade", "uninstall", "reconcile"} {
		ReleaseFailures.WithLabelValues(a) // present at 0, so rate() works from the first failure
	}
}

// countingClient counts each failed action.
type countingClient struct{ helmclient.ActionInterface }

func counted(action string, err error) error {
	if err != nil {
		ReleaseFailures.WithLabelValues(action).Inc()
	}
	return err
}

func (c countingClient) Install(name, namespace string, chrt *chart.Chart, vals map[string]any, opts ...helmclient.InstallOption) (*release.Release, error) {
	rel, err := c.ActionInterface.Install(name, namespace, chrt, vals, opts...)
	return rel, counted("install", err)
}

func (c countingClient) Upgrade(name, namespace string, chrt *chart.Chart, vals map[string]any, opts ...helmclient.UpgradeOption) (*release.Release, error) {
	rel, err := c.ActionInterface.Upgrade(name, namespace, chrt, vals, opts...)
	return rel, counted("upgrade", err)
}

func (c countingClient) Uninstall(name string, opts ...helmclient.UninstallOption) (*release.UninstallReleaseResponse, error) {
	resp, err := c.ActionInterface.Uninstall(name, opts...)
	return resp, counted("uninstall", err)
}

func (c countingClient) Reconcile(rel *release.Release) error {
	return counted("reconcile", c.ActionInterface.Reconcile(rel))
}
