package percona

import (
	"fmt"
	"testing"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// createAndWaitCluster creates a Percona server and returns it with its cluster.
func createAndWaitCluster(t *testing.T, ns, name string, mutate func(*v1alpha1.PerconaSpec)) (*v1alpha1.DittoServer, *pgv2.PerconaPGCluster) {
	t.Helper()
	require.NoError(t, k8s.Create(ctx(), perconaServer(ns, name, mutate)))
	pg := getCluster(t, k8s, ns, name)
	ds := getServer(t, k8s, ns, name)
	require.Contains(t, ownerUIDs(pg), ds.UID)
	// Both finalizers are on before we delete (the Go controller adds them with its first write).
	eventually(t, "finalizers", func() error {
		ds = getServer(t, k8s, ns, name)
		if !controllerutil.ContainsFinalizer(ds, specs.Finalizer) {
			return fmt.Errorf("finalizers %v", ds.Finalizers)
		}
		return nil
	})
	return ds, pg
}

// deleteAndWaitGone deletes the server and waits until the API server has removed it.
func deleteAndWaitGone(t *testing.T, ds *v1alpha1.DittoServer) {
	t.Helper()
	require.NoError(t, k8s.Delete(ctx(), ds))
	eventually(t, "DittoServer gone", func() error {
		err := k8s.Get(ctx(), client.ObjectKeyFromObject(ds), &v1alpha1.DittoServer{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		cur := &v1alpha1.DittoServer{}
		if err := k8s.Get(ctx(), client.ObjectKeyFromObject(ds), cur); err != nil {
			return err
		}
		return fmt.Errorf("still there, finalizers %v, phase %s", cur.Finalizers, cur.Status.Phase)
	})
}

// clusterState reads the cluster: nil when it is gone.
func clusterState(t *testing.T, ns, server string) *pgv2.PerconaPGCluster {
	t.Helper()
	pg := &pgv2.PerconaPGCluster{}
	err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: server + "-postgres"}, pg)
	if apierrors.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return pg
}

// envtest runs no garbage collector: what GC would do follows from the owner references, so
// the tests assert on them and on the object existing or being gone.
func TestPerconaDeletion(t *testing.T) {
	mgr := env.StartManager(t, func(o *hybrid.Options) { o.CleanupTimeout = 2 * time.Second })
	defer mgr.Stop(t)
	ns := newNamespace(t, k8s)

	t.Run("deleteWithServer false orphans the cluster", func(t *testing.T) {
		ds, _ := createAndWaitCluster(t, ns, "keep", nil)
		deleteAndWaitGone(t, ds)
		pg := clusterState(t, ns, "keep")
		require.NotNil(t, pg, "the database is kept")
		assert.NotContains(t, ownerUIDs(pg), ds.UID, "no owner reference left for GC to follow")
		assert.Nil(t, pg.DeletionTimestamp)
		waitEvent(t, k8s, ns, "keep", specs.EventPerconaOrphaned, "keep-postgres")

		// A server re-created with the same name adopts the kept database.
		require.NoError(t, k8s.Create(ctx(), perconaServer(ns, "keep", nil)))
		again := getServer(t, k8s, ns, "keep")
		assert.NotEqual(t, ds.UID, again.UID)
		eventually(t, "adopted", func() error {
			pg := clusterState(t, ns, "keep")
			if c := metav1.GetControllerOf(pg); c == nil || c.UID != again.UID {
				return fmt.Errorf("controller %v", c)
			}
			return nil
		})
	})

	t.Run("deleteWithServer true deletes the cluster", func(t *testing.T) {
		ds, _ := createAndWaitCluster(t, ns, "drop", func(p *v1alpha1.PerconaSpec) { p.DeleteWithServer = true })
		deleteAndWaitGone(t, ds)
		assert.Nil(t, clusterState(t, ns, "drop"), "the cluster is gone")
		waitEvent(t, k8s, ns, "drop", specs.EventPerconaDeleted, "drop-postgres")
		assert.Empty(t, events(t, k8s, ns, "drop", specs.EventCleanupTimeout))
	})

	t.Run("percona disabled before deletion orphans at once and never deletes", func(t *testing.T) {
		createAndWaitCluster(t, ns, "off", func(p *v1alpha1.PerconaSpec) { p.DeleteWithServer = true })
		waitCondition(t, k8s, ns, "off", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady)
		ds := updateServer(t, ns, "off", func(ds *v1alpha1.DittoServer) { ds.Spec.Percona.Enabled = false })
		eventually(t, "orphaned when disabled", func() error {
			pg := clusterState(t, ns, "off")
			if pg == nil || len(pg.OwnerReferences) > 0 {
				return fmt.Errorf("cluster %v", pg)
			}
			if cur := getServer(t, k8s, ns, "off"); cur.Status.PerconaClusterName != "" || condition(cur, specs.ConditionDatabaseReady) != nil {
				return fmt.Errorf("status still names %q", cur.Status.PerconaClusterName)
			}
			return nil
		})
		waitEvent(t, k8s, ns, "off", specs.EventPerconaOrphaned, "spec.percona.enabled is false")
		deleteAndWaitGone(t, ds)
		pg := clusterState(t, ns, "off")
		require.NotNil(t, pg, "deleteWithServer applies only while Percona is enabled")
		assert.Nil(t, pg.DeletionTimestamp)
	})

	t.Run("cleanup timeout: a cluster that does not go is let go without our owner reference", func(t *testing.T) {
		ds, pg := createAndWaitCluster(t, ns, "slow", func(p *v1alpha1.PerconaSpec) { p.DeleteWithServer = true })
		// Something else (e.g. Percona's own finalizer) holds the cluster.
		hold := []byte(`{"metadata":{"finalizers":["test.dittofs.com/hold"]}}`)
		require.NoError(t, k8s.Patch(ctx(), pg, client.RawPatch(types.MergePatchType, hold)))
		start := time.Now()
		deleteAndWaitGone(t, ds)
		// (deletionTimestamp has a resolution of one second.)
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "waited for the cluster up to the timeout")
		pg = clusterState(t, ns, "slow")
		require.NotNil(t, pg)
		assert.NotNil(t, pg.DeletionTimestamp, "its deletion continues")
		assert.NotContains(t, ownerUIDs(pg), ds.UID)
		waitEvent(t, k8s, ns, "slow", specs.EventPerconaDeleted, "slow-postgres")
		waitEvent(t, k8s, ns, "slow", specs.EventCleanupTimeout, "still being deleted")
		release := []byte(`{"metadata":{"finalizers":null}}`)
		require.NoError(t, k8s.Patch(ctx(), pg, client.RawPatch(types.MergePatchType, release)))
	})

	t.Run("cleanup timeout: the finalizer stays until orphaning succeeds", func(t *testing.T) {
		ds, pg := createAndWaitCluster(t, ns, "locked", nil)
		unlock := lockCluster(t, pg)
		require.NoError(t, k8s.Delete(ctx(), ds))
		got := waitCondition(t, k8s, ns, "locked", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonCleanupTimeout, "finalizer stays")
		assert.Equal(t, v1alpha1.PhaseDeleting, got.Status.Phase)
		assert.Contains(t, got.Finalizers, specs.Finalizer)
		waitEvent(t, k8s, ns, "locked", specs.EventCleanupTimeout, "finalizer stays")
		assert.Contains(t, ownerUIDs(clusterState(t, ns, "locked")), ds.UID)

		unlock()
		deleteAndWaitGone(t, ds)
		pg = clusterState(t, ns, "locked")
		require.NotNil(t, pg)
		assert.NotContains(t, ownerUIDs(pg), ds.UID)
	})
}

// lockCluster makes the API server refuse every update of the cluster (a ValidatingAdmission
// Policy on a label), so orphaning fails; unlock removes the label, which the policy allows.
func lockCluster(t *testing.T, pg *pgv2.PerconaPGCluster) (unlock func()) {
	t.Helper()
	const label = "test.dittofs.com/locked"
	patch := []byte(`{"metadata":{"labels":{"` + label + `":"true"}}}`)
	require.NoError(t, k8s.Patch(ctx(), pg, client.RawPatch(types.MergePatchType, patch)))
	name := "lock-" + pg.Namespace
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{"pgv2.percona.com"}, APIVersions: []string{"v2"},
						Resources: []string{"perconapgclusters"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: `!has(object.metadata.labels) || !('` + label + `' in object.metadata.labels)`,
				Message:    "locked by the test",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": pg.Namespace}}},
		},
	}
	require.NoError(t, k8s.Create(ctx(), policy))
	require.NoError(t, k8s.Create(ctx(), binding))
	eventually(t, "the policy denies updates", func() error {
		probe := []byte(`{"metadata":{"annotations":{"probe":"` + time.Now().String() + `"}}}`)
		err := k8s.Patch(ctx(), pg.DeepCopy(), client.RawPatch(types.MergePatchType, probe))
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return nil
		}
		return fmt.Errorf("update allowed: %w", err)
	})
	return func() {
		unpatch := []byte(`{"metadata":{"labels":{"` + label + `":null}}}`)
		require.NoError(t, k8s.Patch(ctx(), pg.DeepCopy(), client.RawPatch(types.MergePatchType, unpatch)))
		require.NoError(t, k8s.Delete(ctx(), binding))
		require.NoError(t, k8s.Delete(ctx(), policy))
	}
}
