// Package helmchart installs, upgrades and uninstalls the operator chart
// (helm-charts/dittofs-operator) with the pinned Helm CLI on a local kwok cluster: a real
// kube-apiserver, kube-controller-manager and scheduler, with simulated nodes that report the
// operator's pods ready (no container runs; the operator itself is tested elsewhere).
package helmchart

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dittofs/dittofs-operator/test/helmcli"
	"github.com/dittofs/dittofs-operator/test/kwok"
)

const (
	ns      = "dittofs-operator-system"
	release = "dittofs-operator"
	chart   = helmcli.Chart
)

func TestInstallUpgradeUninstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kwok cluster")
	}
	c := kwok.NewCluster(t, "helmchart")
	c.Up()
	helm := func(args ...string) string {
		t.Helper()
		return helmcli.Must(t, append(args, "--kubeconfig", c.Kubeconfig)...)
	}
	// kwok's simulated node is tainted; the operator's pods tolerate it here only.
	values := filepath.Join(t.TempDir(), "kwok.yaml")
	require.NoError(t, os.WriteFile(values, []byte(`tolerations:
  - key: kwok.x-k8s.io/node
    operator: Exists
    effect: NoSchedule
`), 0o644))

	start := time.Now()
	helm("install", release, chart, "-n", ns, "--create-namespace", "-f", values, "--wait", "--timeout", "2m")
	t.Logf("helm install --wait: %s", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, "1", c.MustKubectl("-n", ns, "get", "deployment", "dittofs-operator-controller-manager", "-o", "jsonpath={.status.readyReplicas}"))
	c.MustKubectl("get", "crd", "dittoservers.dittofs.dittofs.com")
	c.MustKubectl("get", "clusterrolebinding", "dittofs-operator-manager-rolebinding")

	// A user's server and one of its volumes, as the operator would have made them.
	c.MustKubectl("create", "namespace", "files")
	applyYAML(t, c, `apiVersion: dittofs.dittofs.com/v1alpha1
kind: DittoServer
metadata: {name: files, namespace: files}
spec:
  storage: {metadataSize: 1Gi}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: metadata-files-0
  namespace: files
  labels: {app.kubernetes.io/instance: files, app.kubernetes.io/part-of: dittofs}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
`)

	// docs/UPGRADE.md's CRD step (Helm never upgrades crds/) works over the CRD Helm installed.
	c.MustKubectl("apply", "--server-side", "--force-conflicts", "-f", filepath.Join(c.Root, chart, "crds"))

	// Upgrade: two replicas (leader election) and another default DittoFS image.
	start = time.Now()
	helm("upgrade", release, chart, "-n", ns, "-f", values, "--set", "replicas=2", "--set", "images.dittofs=registry.example.com/dittofs:v0.29.0", "--wait", "--timeout", "2m")
	t.Logf("helm upgrade --wait: %s", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, "2", c.MustKubectl("-n", ns, "get", "deployment", "dittofs-operator-controller-manager", "-o", "jsonpath={.status.readyReplicas}"))
	assert.Contains(t, c.MustKubectl("-n", ns, "get", "deployment", "dittofs-operator-controller-manager", "-o", "jsonpath={.spec.template.spec.containers[0].env}"),
		"registry.example.com/dittofs:v0.29.0")
	assert.Contains(t, helm("history", release, "-n", ns), "Upgrade complete")

	// A value the schema refuses: the release is left as it was.
	_, err := helmcli.Run("upgrade", release, chart, "-n", ns, "-f", values, "--set", "replicas=2", "--set", "leaderElection=false", "--kubeconfig", c.Kubeconfig)
	require.Error(t, err, "two replicas without leader election are refused")
	assert.Contains(t, err.Error(), "leaderElection")
	assert.Equal(t, "2", c.MustKubectl("-n", ns, "get", "deployment", "dittofs-operator-controller-manager", "-o", "jsonpath={.spec.replicas}"))

	// Uninstall: the operator goes; the CRD, the servers and their volumes stay.
	helm("uninstall", release, "-n", ns, "--wait", "--timeout", "2m")
	_, err = c.KubectlRun("-n", ns, "get", "deployment", "dittofs-operator-controller-manager")
	require.Error(t, err, "the Deployment is gone")
	c.MustKubectl("get", "crd", "dittoservers.dittofs.dittofs.com")
	c.MustKubectl("-n", "files", "get", "dittoserver", "files")
	c.MustKubectl("-n", "files", "get", "pvc", "metadata-files-0")
	_, err = c.KubectlRun("get", "clusterrole", "dittofs-operator-manager-role")
	require.Error(t, err, "the RBAC is gone")

	// Installed again over the kept CRD.
	helm("install", release, chart, "-n", ns, "-f", values, "--wait", "--timeout", "2m")
	c.MustKubectl("-n", "files", "get", "dittoserver", "files")
}

func applyYAML(t *testing.T, c *kwok.Cluster, doc string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	require.NoError(t, os.WriteFile(f, []byte(doc), 0o644))
	c.MustKubectl("apply", "-f", f)
}
