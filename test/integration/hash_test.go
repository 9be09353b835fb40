package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// waitHashChange waits until the pod template carries a hash different from old.
func waitHashChange(t *testing.T, ns, name, old string) string {
	t.Helper()
	var h string
	eventually(t, "a new config hash", func() error {
		h = configHash(t, ns, name)
		if h == old {
			return assert.AnError
		}
		return nil
	})
	return h
}

func TestConfigHash(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "hash")))
	markStatefulSetReady(t, ns, "hash")
	waitCondition(t, ns, "hash", specs.ConditionReady, "True", "")
	h0 := configHash(t, ns, "hash")
	require.NotEmpty(t, h0)

	t.Run("a spec change that changes config.yaml rolls the pod", func(t *testing.T) {
		updateServer(t, ns, "hash", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 9091}
		})
		h1 := waitHashChange(t, ns, "hash", h0)
		cm := &corev1.ConfigMap{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "hash-config"}, cm))
		assert.Contains(t, cm.Data["config.yaml"], "port: 9091", "the new hash is only rolled out once the ConfigMap carries the new config")
		h0 = h1
	})

	t.Run("editing a referenced Secret rolls the pod", func(t *testing.T) {
		s := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "dittofs-jwt-secret"}, s))
		s.Data["secret"] = []byte("a-rotated-jwt-secret-0123456789abcdefgh")
		require.NoError(t, k8s.Update(ctx(), s))
		h0 = waitHashChange(t, ns, "hash", h0)
	})

	t.Run("a new metrics token rolls the pod", func(t *testing.T) {
		require.NoError(t, k8s.Create(ctx(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scrape"},
			StringData: map[string]string{"token": "first-token"}}))
		updateServer(t, ns, "hash", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Metrics.BearerTokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "scrape"}, Key: "token"}
		})
		h0 = waitHashChange(t, ns, "hash", h0)
		s := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scrape"}, s))
		s.Data["token"] = []byte("second-token")
		require.NoError(t, k8s.Update(ctx(), s))
		h0 = waitHashChange(t, ns, "hash", h0) // DittoFS reads the token file at boot only

		s.Data["token"] = []byte("  ")
		require.NoError(t, k8s.Update(ctx(), s))
		testenv.WaitCondition(t, k8s, ns, "hash", specs.ConditionReady, "False", specs.ReasonSecretInvalid, `Secret scrape key "token" (spec.metrics.bearerTokenSecretRef) is empty`)
		assert.Equal(t, h0, configHash(t, ns, "hash"), "an empty token is refused, the running pod kept")
		s.Data["token"] = []byte("third-token")
		require.NoError(t, k8s.Update(ctx(), s))
		h0 = waitHashChange(t, ns, "hash", h0)
	})

	t.Run("editing only service.annotations keeps the pod", func(t *testing.T) {
		updateServer(t, ns, "hash", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Service = &v1alpha1.ServiceSpec{Type: "ClusterIP", Annotations: map[string]string{"example.com/team": "storage"}}
		})
		eventually(t, "annotation on the -file Service", func() error {
			svc := &corev1.Service{}
			if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "hash-file"}, svc); err != nil {
				return err
			}
			if svc.Annotations["example.com/team"] != "storage" {
				return assert.AnError
			}
			return nil
		})
		// Let the Go controller see the generation too, then check the hash did not move.
		eventually(t, "observedGeneration", func() error {
			cur := getServer(t, ns, "hash")
			if cur.Status.ObservedGeneration != cur.Generation {
				return assert.AnError
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, h0, configHash(t, ns, "hash"))
	})
}
