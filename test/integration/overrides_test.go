package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestOperatorWideOverrides: override values given to the operator outside watches.yaml (what
// --override-values-file and DITTOFS_OVERRIDE_VALUES carry, with ${ENV} expanded) reach every
// server's objects, through the Helm reconciler and the Go controller alike.
func TestOperatorWideOverrides(t *testing.T) {
	t.Setenv("DITTOFS_TEST_TEAM", "storage")
	mgr := env.StartManager(t, func(o *hybrid.Options) {
		o.OverrideValues = map[string]string{"chartValues.labels.team": "${DITTOFS_TEST_TEAM}", "chartValues.config.gc.auto_interval": "45m",
			"nodeSelector.disktype": "ssd", "resources.limits.memory": "3Gi"}
	})
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "tuned")))
	markStatefulSetReady(t, ns, "tuned")
	waitCondition(t, ns, "tuned", specs.ConditionReady, metav1.ConditionTrue, "")
	eventually(t, "the override on the objects", func() error {
		svc := &corev1.Service{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "tuned-file"}, svc); err != nil {
			return err
		}
		if svc.Labels["team"] != "storage" {
			return fmt.Errorf("-file Service labels %v", svc.Labels)
		}
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "tuned-config"}, cm); err != nil {
			return err
		}
		if want := "auto_interval: 45m"; !strings.Contains(cm.Data["config.yaml"], want) {
			return fmt.Errorf("config.yaml lacks %q:\n%s", want, cm.Data["config.yaml"])
		}
		return nil
	})
	// Spec fields the Go controller builds from reach the StatefulSet too; the DittoServer
	// itself keeps the user's spec.
	pod := testenv.GetStatefulSet(t, k8s, ns, "tuned").Spec.Template.Spec
	assert.Equal(t, map[string]string{"disktype": "ssd"}, pod.NodeSelector)
	assert.Equal(t, "3Gi", pod.Containers[0].Resources.Limits.Memory().String())
	ds := testenv.GetServer(t, k8s, ns, "tuned")
	assert.Empty(t, ds.Spec.NodeSelector, "the override is not written back to the DittoServer")
}
