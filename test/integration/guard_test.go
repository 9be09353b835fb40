package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

func reconcileCount(t *testing.T) float64 {
	t.Helper()
	return testenv.ReconcileCount(t, "dittoserver-go")
}

func storageClass(name string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "kubernetes.io/host-path"}
}

func events(t *testing.T, ns, name, reason string) []string {
	t.Helper()
	return testenv.Events(t, k8s, ns, name, reason)
}

func TestGuardWithoutWebhook(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	scName := fmt.Sprintf("fast-%s", ns)

	ds := basicServer(ns, "guarded")
	ds.Spec.Storage.StorageClassName = ptr.To(scName)
	require.NoError(t, k8s.Create(ctx(), ds), "without a webhook the API server admits it")

	got := waitCondition(t, ns, "guarded", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonInvalidSpec)
	msg := condition(got, specs.ConditionReady).Message
	assert.Contains(t, msg, "spec.storage.storageClassName")
	assert.Contains(t, msg, scName)
	assert.Equal(t, v1alpha1.PhaseFailed, got.Status.Phase)
	err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "guarded"}, &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "no rollout for an invalid spec")
	eventually(t, "InvalidSpec event", func() error {
		for _, m := range events(t, ns, "guarded", specs.EventReconcileFailed) {
			if strings.Contains(m, specs.ReasonInvalidSpec) && strings.Contains(m, scName) {
				return nil
			}
		}
		return assert.AnError
	})

	// No hot loop: once the create settled (Helm's install writes its own status), the guard
	// does not spin while nothing changes.
	time.Sleep(time.Second)
	before := reconcileCount(t)
	time.Sleep(3 * time.Second)
	assert.Zero(t, reconcileCount(t)-before, "reconciles while an invalid spec waits")

	// The StorageClass appears: the StorageClass watch brings the server up without waiting.
	require.NoError(t, k8s.Create(ctx(), storageClass(scName)))
	getStatefulSet(t, ns, "guarded")
	markStatefulSetReady(t, ns, "guarded")
	waitCondition(t, ns, "guarded", specs.ConditionReady, metav1.ConditionTrue, "")
	hash := configHash(t, ns, "guarded")

	// It is deleted after admission: the guard catches it, the running pod is left alone.
	require.NoError(t, k8s.Delete(ctx(), storageClass(scName)))
	waitCondition(t, ns, "guarded", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonInvalidSpec)
	assert.Equal(t, hash, configHash(t, ns, "guarded"))
}

// TestGuardRefusesPrivilege: without a webhook, a server asking for a privileged or root
// container is refused before anything rolls out, with the field and the fix named.
func TestGuardRefusesPrivilege(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "root")
	ds.Spec.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true), Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
	require.NoError(t, k8s.Create(ctx(), ds))
	got := waitCondition(t, ns, "root", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonInvalidSpec)
	msg := condition(got, specs.ConditionReady).Message
	assert.Contains(t, msg, "spec.securityContext.privileged: is true")
	assert.Contains(t, msg, "spec.securityContext.capabilities.add: adds [NET_ADMIN]")
	err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "root"}, &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "no rollout for a privileged container")

	testenv.UpdateServer(t, k8s, ns, "root", func(ds *v1alpha1.DittoServer) { ds.Spec.SecurityContext = nil })
	getStatefulSet(t, ns, "root")
}

func TestGuardPerconaCRDMissing(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "pg", Namespace: ns},
		Spec: v1alpha1.DittoServerSpec{
			Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"},
			Percona: &v1alpha1.PerconaSpec{Enabled: true},
		},
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	// Not an invalid spec: the server waits for the Percona operator (the webhook still rejects
	// it; test/percona covers the CRD appearing later).
	got := waitCondition(t, ns, "pg", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonPerconaCRDMissing)
	assert.Contains(t, condition(got, specs.ConditionReady).Message, "Percona PostgreSQL operator is not installed")
	db := condition(got, specs.ConditionDatabaseReady)
	require.NotNil(t, db)
	assert.Equal(t, specs.ReasonPerconaCRDMissing, db.Reason)
	assert.Equal(t, v1alpha1.PhasePending, got.Status.Phase)

	// Deletion does not depend on the Percona CRD either.
	require.NoError(t, k8s.Delete(ctx(), got))
	eventually(t, "deleted without the Percona CRD", func() error {
		err := k8s.Get(ctx(), clientKey(got), &v1alpha1.DittoServer{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
}

func TestGuardWarningsDoNotBlock(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "warned")
	ds.Spec.Cache = &v1alpha1.CacheSpec{Size: "4GB"}
	ds.Spec.Identity.JWT.Issuer = "me"
	require.NoError(t, k8s.Create(ctx(), ds))
	markStatefulSetReady(t, ns, "warned")
	got := waitCondition(t, ns, "warned", specs.ConditionReady, metav1.ConditionTrue, "")
	msg := condition(got, specs.ConditionReady).Message
	assert.Contains(t, msg, "spec.cache has no effect")
	assert.Contains(t, msg, "spec.identity.jwt.issuer has no effect")
}

// TestGuardChartValues: without the webhook, chartValues that change what the server depends on
// get the webhook's answer as a condition, and nothing rolls out.
func TestGuardChartValues(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "pinned")
	ds.Spec.ChartValues = &apiextensionsv1.JSON{Raw: []byte(`{"config":{"shutdown_timeout":"10m"}}`)}
	require.NoError(t, k8s.Create(ctx(), ds), "without a webhook the API server admits it")

	got := waitCondition(t, ns, "pinned", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonRenderFailed)
	msg := condition(got, specs.ConditionReady).Message
	assert.Contains(t, msg, "spec.chartValues.config.shutdown_timeout: may not be set here")
	assert.Contains(t, msg, "termination grace period")
	assert.Equal(t, v1alpha1.PhaseFailed, got.Status.Phase)
	waitCondition(t, ns, "pinned", specs.ConditionIrreconcilable, metav1.ConditionTrue, "")
	err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "pinned"}, &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "no rollout")
}
