package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// playStatefulSetController creates the bound PVCs a StatefulSet controller and a provisioner
// would have made for pod 0 (envtest runs neither).
func playStatefulSetController(t *testing.T, sts *appsv1.StatefulSet) {
	t.Helper()
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		// The StatefulSet controller labels each claim with its template's labels and the
		// StatefulSet's selector.
		labels := map[string]string{}
		for k, v := range tpl.Labels {
			labels[k] = v
		}
		for k, v := range sts.Spec.Selector.MatchLabels {
			labels[k] = v
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: sts.Namespace, Name: fmt.Sprintf("%s-%s-0", tpl.Name, sts.Name), Labels: labels},
			Spec:       *tpl.Spec.DeepCopy(),
		}
		require.NoError(t, k8s.Create(ctx(), pvc))
		pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: tpl.Spec.Resources.Requests[corev1.ResourceStorage]}}
		require.NoError(t, k8s.Status().Update(ctx(), pvc))
	}
}

// playGarbageCollector finishes an orphan deletion: the garbage collector would remove the
// owner references of the pods and then the orphan finalizer (envtest runs no collector).
func playGarbageCollector(t *testing.T, ns, name string) {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, sts))
	require.Contains(t, sts.Finalizers, metav1.FinalizerOrphanDependents, "deleted without its pods")
	patch := client.MergeFrom(sts.DeepCopy())
	sts.Finalizers = nil
	require.NoError(t, k8s.Patch(ctx(), sts, patch))
}

// readyServerOn creates a Ready server whose volumes use StorageClass class, with its PVCs.
func readyServerOn(t *testing.T, ns, name, class string) *appsv1.StatefulSet {
	t.Helper()
	ds := basicServer(ns, name)
	ds.Spec.Storage.StorageClassName = ptr.To(class)
	require.NoError(t, k8s.Create(ctx(), ds))
	sts := getStatefulSet(t, ns, name)
	playStatefulSetController(t, sts)
	markStatefulSetReady(t, ns, name)
	waitCondition(t, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	return sts
}

func claimSize(t *testing.T, ns, name string) string {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, pvc))
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	return q.String()
}

func templateSize(sts *appsv1.StatefulSet, name string) string {
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		if tpl.Name == name {
			q := tpl.Spec.Resources.Requests[corev1.ResourceStorage]
			return q.String()
		}
	}
	return ""
}

// TestVolumeExpansion: a larger spec.storage size resizes the PVC and re-creates the
// StatefulSet (without its pod) with the new claim template; with a StorageClass that cannot
// expand, nothing is resized, the rest still applies, Ready carries a warning, and enabling
// expansion on the StorageClass lets the operator proceed.
func TestVolumeExpansion(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	expandable, fixed := ns+"-expandable", ns+"-fixed"
	for name, allow := range map[string]bool{expandable: true, fixed: false} {
		require.NoError(t, k8s.Create(ctx(), &storagev1.StorageClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/none", AllowVolumeExpansion: ptr.To(allow),
		}))
	}

	t.Run("expandable StorageClass", func(t *testing.T) {
		sts := readyServerOn(t, ns, "grow", expandable)
		hash := configHash(t, ns, "grow")

		updateServer(t, ns, "grow", func(ds *v1alpha1.DittoServer) { ds.Spec.Storage.MetadataSize = "20Gi" })
		eventually(t, "PVC resized", func() error {
			if got := claimSize(t, ns, "metadata-grow-0"); got != "20Gi" {
				return fmt.Errorf("metadata-grow-0 requests %s", got)
			}
			return nil
		})
		eventually(t, "StatefulSet deleted without its pods", func() error {
			cur := &appsv1.StatefulSet{}
			if err := k8s.Get(ctx(), client.ObjectKeyFromObject(sts), cur); err != nil {
				return err
			}
			if cur.DeletionTimestamp.IsZero() {
				return fmt.Errorf("not deleted yet")
			}
			return nil
		})
		// The status is written at the end of the reconcile that deleted the StatefulSet.
		eventually(t, "Progressing says why", func() error {
			if c := condition(getServer(t, ns, "grow"), specs.ConditionProgressing); c == nil || c.Reason != specs.ReasonExpandingVolumes {
				return fmt.Errorf("Progressing: %+v", c)
			}
			return nil
		})
		playGarbageCollector(t, ns, "grow")
		eventually(t, "StatefulSet re-created with the new claim template", func() error {
			cur := &appsv1.StatefulSet{}
			if err := k8s.Get(ctx(), client.ObjectKeyFromObject(sts), cur); err != nil {
				return err
			}
			if cur.UID == sts.UID {
				return fmt.Errorf("still the old StatefulSet")
			}
			if got := templateSize(cur, specs.VolumeMetadata); got != "20Gi" {
				return fmt.Errorf("metadata template %s", got)
			}
			return nil
		})
		assert.Equal(t, "50Gi", claimSize(t, ns, "content-grow-0"), "other volumes untouched")
		assert.Equal(t, hash, configHash(t, ns, "grow"), "no pod restart: same pod template")
		markStatefulSetReady(t, ns, "grow")
		waitCondition(t, ns, "grow", specs.ConditionReady, metav1.ConditionTrue, "")
		testenv.WaitEvent(t, k8s, ns, "grow", specs.EventVolumesExpanding)
	})

	t.Run("StorageClass without expansion", func(t *testing.T) {
		sts := readyServerOn(t, ns, "stuck", fixed)

		updateServer(t, ns, "stuck", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Storage.MetadataSize = "20Gi"
			ds.Spec.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("3Gi")}}
		})
		eventually(t, "the rest applied, a warning in Ready", func() error {
			markStatefulSetReady(t, ns, "stuck") // the memory limit rolls the pod
			cur := getStatefulSet(t, ns, "stuck")
			if lim := cur.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; lim.String() != "3Gi" {
				return fmt.Errorf("memory limit %s", lim.String())
			}
			c := condition(getServer(t, ns, "stuck"), specs.ConditionReady)
			if c == nil || !strings.Contains(c.Message, "does not allow volume expansion") {
				return fmt.Errorf("Ready: %+v", c)
			}
			return nil
		})
		cur := getStatefulSet(t, ns, "stuck")
		assert.Equal(t, sts.UID, cur.UID, "not re-created")
		assert.Equal(t, "10Gi", templateSize(cur, specs.VolumeMetadata))
		assert.Equal(t, "10Gi", claimSize(t, ns, "metadata-stuck-0"), "not resized")
		msg := condition(getServer(t, ns, "stuck"), specs.ConditionReady).Message
		assert.Contains(t, msg, "spec.storage.metadataSize 10Gi -> 20Gi")
		assert.Contains(t, msg, fixed)
		testenv.WaitEvent(t, k8s, ns, "stuck", specs.ReasonVolumeExpansionBlocked)

		// The administrator enables expansion: the operator proceeds without another spec change.
		sc := &storagev1.StorageClass{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Name: fixed}, sc))
		sc.AllowVolumeExpansion = ptr.To(true)
		require.NoError(t, k8s.Update(ctx(), sc))
		eventually(t, "PVC resized once the StorageClass allows it", func() error {
			if got := claimSize(t, ns, "metadata-stuck-0"); got != "20Gi" {
				return fmt.Errorf("metadata-stuck-0 requests %s", got)
			}
			return nil
		})
	})
}
