package integration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// collectGarbage plays the garbage collector (envtest runs none): every object of the listed
// kinds in ns that the deleted owner controlled is deleted, as the collector would.
func collectGarbage(t *testing.T, ns string, owner types.UID) []string {
	t.Helper()
	var deleted []string
	lists := []client.ObjectList{&corev1.SecretList{}, &corev1.ConfigMapList{}, &corev1.ServiceList{}, &corev1.PersistentVolumeClaimList{}, &appsv1.StatefulSetList{}}
	for _, l := range lists {
		require.NoError(t, k8s.List(ctx(), l, client.InNamespace(ns)))
		items, err := apimeta.ExtractList(l)
		require.NoError(t, err)
		for _, item := range items {
			o := item.(client.Object)
			for _, ref := range o.GetOwnerReferences() {
				if ref.UID == owner {
					require.NoError(t, client.IgnoreNotFound(k8s.Delete(ctx(), o)))
					deleted = append(deleted, fmt.Sprintf("%T %s", o, o.GetName()))
				}
			}
		}
	}
	return deleted
}

func secretData(t *testing.T, ns, name string) map[string][]byte {
	t.Helper()
	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, s))
	return s.Data
}

// waitGone waits until the DittoServer is gone (its finalizers removed).
func waitGone(t *testing.T, ns, name string) {
	t.Helper()
	testenv.WaitGone(t, k8s, ns, name)
}

// TestCredentialsLiveAsLongAsTheData: the generated credentials have no owner reference, so
// deleting the server (garbage collector included) keeps them with the volumes; a server created
// again with the same name adopts them. Credentials an older operator owned are released.
func TestCredentialsLiveAsLongAsTheData(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	getStatefulSet(t, ns, "kept")
	admin := secretData(t, ns, "kept-admin-credentials")
	jwt := secretData(t, ns, "kept-jwt-secret")

	// As an older operator left it: owned by the server.
	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "kept-admin-credentials"}, s))
	s.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(ds, v1alpha1.GroupVersion.WithKind(v1alpha1.DittoServerKind))}
	require.NoError(t, k8s.Update(ctx(), s))
	eventually(t, "owner reference released", func() error {
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "kept-admin-credentials"}, s))
		if len(s.OwnerReferences) > 0 {
			return fmt.Errorf("still owned: %v", s.OwnerReferences)
		}
		return nil
	})

	require.NoError(t, k8s.Delete(ctx(), ds))
	waitGone(t, ns, "kept")
	t.Logf("garbage collected: %v", collectGarbage(t, ns, ds.UID))
	assert.Equal(t, admin, secretData(t, ns, "kept-admin-credentials"), "kept")
	assert.Equal(t, jwt, secretData(t, ns, "kept-jwt-secret"), "kept")
	assert.Contains(t, events(t, ns, "kept", specs.EventDeleting), "Deleting: owned objects are garbage-collected; PersistentVolumeClaims and generated credentials are kept: a DittoServer created again with this name adopts them")

	again := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	require.NoError(t, k8s.Create(ctx(), again))
	getStatefulSet(t, ns, "kept")
	markStatefulSetReady(t, ns, "kept")
	waitCondition(t, ns, "kept", specs.ConditionReady, metav1.ConditionTrue, "")
	assert.Equal(t, admin, secretData(t, ns, "kept-admin-credentials"), "adopted, not generated again")
	assert.Equal(t, jwt, secretData(t, ns, "kept-jwt-secret"), "adopted, not generated again")
}

// TestDeleteWithServer: with spec.storage.deleteWithServer the PVCs and the generated
// credentials are deleted with the server.
func TestDeleteWithServer(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi", DeleteWithServer: true}},
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	playStatefulSetController(t, getStatefulSet(t, ns, "gone"))
	other := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns, Labels: map[string]string{specs.LabelInstance: "other", specs.LabelPartOf: specs.PartOf}},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	require.NoError(t, k8s.Create(ctx(), other))

	require.NoError(t, k8s.Delete(ctx(), ds))
	waitGone(t, ns, "gone")
	pvcs := &corev1.PersistentVolumeClaimList{}
	require.NoError(t, k8s.List(ctx(), pvcs, client.InNamespace(ns)))
	for _, pvc := range pvcs.Items {
		if pvc.Name == "unrelated" {
			assert.True(t, pvc.DeletionTimestamp.IsZero(), "another server's volume is left alone")
			continue
		}
		assert.False(t, pvc.DeletionTimestamp.IsZero(), "PVC %s deleted (the protection finalizer holds it while a pod uses it)", pvc.Name)
	}
	for _, name := range []string{"gone-admin-credentials", "gone-jwt-secret"} {
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{})
		assert.True(t, apierrors.IsNotFound(err), "%s deleted: %v", name, err)
	}
	assert.NotEmpty(t, events(t, ns, "gone", specs.EventDataDeleted))
}
