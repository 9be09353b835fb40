package hybrid

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;patch

// A StatefulSet's volumeClaimTemplates cannot change. A larger spec.storage size is applied the
// way storage operators do it: each existing PVC is resized (the StorageClass must allow
// expansion; the storage driver grows the volume), then the StatefulSet is deleted without its
// pods (orphan) and created again with the new templates, adopting the running pod: no restart.

// volumeExpansionBlocked: the user asked for a larger volume the StorageClass cannot give.
type volumeExpansionBlocked struct{ message string }

func (e *volumeExpansionBlocked) Error() string { return e.message }

// statefulSetReplacing: the StatefulSet is being re-created for new claim templates.
type statefulSetReplacing struct {
	existing *appsv1.StatefulSet
	message  string
}

func (e *statefulSetReplacing) Error() string { return e.message }

// grownClaims returns the claim templates of desired that ask for more storage than the same
// template of existing, and whether every other difference is none (same names and classes).
func grownClaims(existing, desired *appsv1.StatefulSet) (grown map[string]resource.Quantity, onlyGrowth bool) {
	have := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range existing.Spec.VolumeClaimTemplates {
		have[c.Name] = c
	}
	if len(have) != len(desired.Spec.VolumeClaimTemplates) {
		return nil, false
	}
	grown = map[string]resource.Quantity{}
	for _, want := range desired.Spec.VolumeClaimTemplates {
		cur, ok := have[want.Name]
		if !ok || storageClassOf(&cur) != storageClassOf(&want) {
			return nil, false
		}
		w, c := want.Spec.Resources.Requests[corev1.ResourceStorage], cur.Spec.Resources.Requests[corev1.ResourceStorage]
		if w.Cmp(c) > 0 {
			grown[want.Name] = w
		}
	}
	return grown, true
}

func storageClassOf(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName == nil {
		return ""
	}
	return *pvc.Spec.StorageClassName
}

// expandVolumes resizes the PVCs of the grown claim templates and deletes the StatefulSet
// without its pods; the caller re-creates it once it is gone. It changes nothing when a PVC's
// StorageClass does not allow expansion (volumeExpansionBlocked).
func (r *Reconciler) expandVolumes(ctx context.Context, ds *v1alpha1.DittoServer, existing *appsv1.StatefulSet, grown map[string]resource.Quantity) error {
	names := make([]string, 0, len(grown))
	for n := range grown {
		names = append(names, n)
	}
	sort.Strings(names)
	replicas := int32(1)
	if existing.Spec.Replicas != nil {
		replicas = *existing.Spec.Replicas
	}
	type resize struct {
		pvc  *corev1.PersistentVolumeClaim
		size resource.Quantity
	}
	var todo []resize
	for _, tpl := range names {
		size := grown[tpl]
		for i := int32(0); i < max(replicas, 1); i++ {
			pvc := &corev1.PersistentVolumeClaim{}
			key := types.NamespacedName{Namespace: existing.Namespace, Name: fmt.Sprintf("%s-%s-%d", tpl, existing.Name, i)}
			if err := r.APIReader.Get(ctx, key, pvc); err != nil {
				if apierrors.IsNotFound(err) {
					continue // not created yet: the new template creates it with the new size
				}
				return err
			}
			cur := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if cur.Cmp(size) >= 0 {
				continue
			}
			if err := r.checkExpandable(ctx, pvc, tpl, cur, size); err != nil {
				return err
			}
			todo = append(todo, resize{pvc, size})
		}
	}
	var resized []string
	for _, rz := range todo {
		patch := client.MergeFrom(rz.pvc.DeepCopy())
		rz.pvc.Spec.Resources.Requests[corev1.ResourceStorage] = rz.size
		if err := r.Client.Patch(ctx, rz.pvc, patch); err != nil {
			return fmt.Errorf("resizing PersistentVolumeClaim %s to %s: %w", rz.pvc.Name, rz.size.String(), err)
		}
		resized = append(resized, fmt.Sprintf("%s to %s", rz.pvc.Name, rz.size.String()))
	}
	uid := existing.UID
	if err := r.Client.Delete(ctx, existing, client.PropagationPolicy(metav1.DeletePropagationOrphan),
		client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("re-creating StatefulSet %s for the new volume sizes: %w", existing.Name, err)
	}
	r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventVolumesExpanding,
		"Resized PersistentVolumeClaims: %s; re-creating StatefulSet %s for the new volume sizes (its pod keeps running)", orNone(resized), existing.Name)
	return &statefulSetReplacing{existing: existing, message: fmt.Sprintf("re-creating StatefulSet %s for the new volume sizes (PVCs resized: %s)", existing.Name, orNone(resized))}
}

// checkExpandable reports volumeExpansionBlocked unless the PVC's StorageClass allows expansion.
func (r *Reconciler) checkExpandable(ctx context.Context, pvc *corev1.PersistentVolumeClaim, tpl string, from, to resource.Quantity) error {
	field := "spec.storage." + sizeField(tpl)
	blocked := func(why, fix string) error {
		return &volumeExpansionBlocked{fmt.Sprintf("%s %s -> %s is not applied: PersistentVolumeClaim %s %s; %s (the server keeps running on %s; volumes never shrink, so the size cannot be set back)",
			field, from.String(), to.String(), pvc.Name, why, fix, from.String())}
	}
	class := storageClassOf(pvc)
	if class == "" {
		return blocked("has no StorageClass", "it cannot be expanded")
	}
	sc := &storagev1.StorageClass{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: class}, sc); err != nil {
		if apierrors.IsNotFound(err) {
			return blocked("uses StorageClass "+class+", which does not exist", "it cannot be expanded")
		}
		return err
	}
	if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		return blocked("uses StorageClass "+class+", which does not allow volume expansion",
			"set allowVolumeExpansion: true on it if its driver supports expansion, and the operator expands the volume")
	}
	return nil
}

// sizeField is the spec.storage field of a claim template.
func sizeField(tpl string) string {
	switch tpl {
	case VolumeMetadata:
		return "metadataSize"
	case VolumeCache:
		return "cacheSize"
	case VolumeControlPlane:
		return "controlPlaneSize"
	case VolumeContent:
		return "contentSize"
	}
	return tpl + "Size"
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
