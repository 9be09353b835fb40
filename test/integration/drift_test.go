package integration

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

func TestDriftIsRepaired(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "drift")))
	markStatefulSetReady(t, ns, "drift")
	waitCondition(t, ns, "drift", specs.ConditionReady, "True", "")

	key := func(n string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: n} }

	t.Run("deleted ConfigMap comes back", func(t *testing.T) {
		cm := &corev1.ConfigMap{}
		require.NoError(t, k8s.Get(ctx(), key("drift-config"), cm))
		require.NoError(t, k8s.Delete(ctx(), cm))
		eventually(t, "ConfigMap re-created", func() error {
			again := &corev1.ConfigMap{}
			if err := k8s.Get(ctx(), key("drift-config"), again); err != nil {
				return err
			}
			if again.UID == cm.UID || again.Data["config.yaml"] != cm.Data["config.yaml"] {
				return assert.AnError
			}
			return nil
		})
	})

	t.Run("deleted Service comes back", func(t *testing.T) {
		svc := &corev1.Service{}
		require.NoError(t, k8s.Get(ctx(), key("drift-api"), svc))
		require.NoError(t, k8s.Delete(ctx(), svc))
		eventually(t, "Service re-created", func() error {
			again := &corev1.Service{}
			if err := k8s.Get(ctx(), key("drift-api"), again); err != nil {
				return err
			}
			if again.UID == svc.UID {
				return assert.AnError
			}
			return nil
		})
	})

	t.Run("an edited Service port is reverted", func(t *testing.T) {
		svc := &corev1.Service{}
		require.NoError(t, k8s.Get(ctx(), key("drift-file"), svc))
		svc.Spec.Ports[0].Port = 3049
		require.NoError(t, k8s.Update(ctx(), svc))
		eventually(t, "port reverted", func() error {
			again := &corev1.Service{}
			if err := k8s.Get(ctx(), key("drift-file"), again); err != nil {
				return err
			}
			if again.Spec.Ports[0].Port != 12049 {
				return assert.AnError
			}
			return nil
		})
	})
}
