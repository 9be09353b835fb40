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
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// PVCs: find a server's claims (get, list; watch: the metadata of the operator's claims is
// cached), grow them (patch), delete them only with spec.storage.deleteWithServer.
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;patch;delete

// A StatefulSet's volumeClaimTemplates cannot change. A larger spec.storage size is applied the
// way storage operators do it: each existing PVC is resized (the StorageClass must allow
// expansion; the storage driver grows the volume), then the StatefulSet is deleted without its
// pods (orphan) and created again with the new templates, adopting the running pod: no restart.

// expandVolumes resizes the PVCs of the grown claim templates and deletes the StatefulSet
// without its pods; the StatefulSet step creates it again once it is gone. It returns what is
// in flight, or the Problem of a PVC whose StorageClass does not allow expansion (then nothing
// is changed).
func (r *Reconciler) expandVolumes(ctx context.Context, ds *v1alpha1.DittoServer, existing *appsv1.StatefulSet, grown map[string]resource.Quantity) (string, *specs.Problem, error) {
	names := make([]string, 0, len(grown))
	for n := range grown {
		names = append(names, n)
	}
	sort.Strings(names)
	type resize struct {
		pvc  *corev1.PersistentVolumeClaim
		size resource.Quantity
	}
	var todo []resize
	for _, tpl := range names {
		size := grown[tpl]
		for i := int32(0); i < max(stsReplicas(existing), 1); i++ {
			pvc := &corev1.PersistentVolumeClaim{}
			key := types.NamespacedName{Namespace: existing.Namespace, Name: fmt.Sprintf("%s-%s-%d", tpl, existing.Name, i)}
			if err := r.APIReader.Get(ctx, key, pvc); err != nil {
				if apierrors.IsNotFound(err) {
					continue // not created yet: the new template creates it with the new size
				}
				return "", nil, err
			}
			cur := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			if cur.Cmp(size) >= 0 {
				continue
			}
			if problem, err := r.checkExpandable(ctx, pvc, tpl, cur, size); problem != nil || err != nil {
				return "", problem, err
			}
			todo = append(todo, resize{pvc, size})
		}
	}
	var resized []string
	for _, rz := range todo {
		patch := client.MergeFrom(rz.pvc.DeepCopy())
		rz.pvc.Spec.Resources.Requests[corev1.ResourceStorage] = rz.size
		if err := r.Client.Patch(ctx, rz.pvc, patch); err != nil {
			return "", nil, fmt.Errorf("resizing PersistentVolumeClaim %s to %s: %w", rz.pvc.Name, rz.size.String(), err)
		}
		resized = append(resized, fmt.Sprintf("%s to %s", rz.pvc.Name, rz.size.String()))
	}
	uid := existing.UID
	if err := r.Client.Delete(ctx, existing, client.PropagationPolicy(metav1.DeletePropagationOrphan),
		client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return "", nil, fmt.Errorf("re-creating StatefulSet %s for the new volume sizes: %w", existing.Name, err)
	}
	r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventVolumesExpanding,
		"Resized PersistentVolumeClaims: %s; re-creating StatefulSet %s for the new volume sizes (its pod keeps running)", orNone(resized), existing.Name)
	return fmt.Sprintf("re-creating StatefulSet %s for the new volume sizes (PVCs resized: %s)", existing.Name, orNone(resized)), nil, nil
}

// growKeptClaims applies the spec's sizes to the PVCs a new StatefulSet adopts: kept from a
// server of the same name, or made from an older template while the StatefulSet was being
// re-created. The StatefulSet controller never resizes an existing PVC, so a smaller one is
// resized here when its StorageClass allows expansion. Otherwise its claim template keeps the
// PVC's size: the StatefulSet then says what the server really has, and the next reconciles
// see the growth, report it blocked and retry, as for a running server.
func (r *Reconciler) growKeptClaims(ctx context.Context, ds *v1alpha1.DittoServer, desired *appsv1.StatefulSet, kept map[string]*corev1.PersistentVolumeClaim) (*specs.Problem, error) {
	var blocked *specs.Problem
	var resized []string
	for i := range desired.Spec.VolumeClaimTemplates {
		tpl := &desired.Spec.VolumeClaimTemplates[i]
		pvc := kept[tpl.Name]
		if pvc == nil {
			continue
		}
		want, cur := tpl.Spec.Resources.Requests[corev1.ResourceStorage], pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if cur.Cmp(want) >= 0 {
			continue
		}
		problem, err := r.checkExpandable(ctx, pvc, tpl.Name, cur, want)
		if err != nil {
			return nil, err
		}
		if problem != nil {
			tpl.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: cur}
			if blocked == nil {
				blocked = problem
			}
			continue
		}
		patch := client.MergeFrom(pvc.DeepCopy())
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = want
		if err := r.Client.Patch(ctx, pvc, patch); err != nil {
			return nil, fmt.Errorf("resizing PersistentVolumeClaim %s to %s: %w", pvc.Name, want.String(), err)
		}
		resized = append(resized, fmt.Sprintf("%s to %s", pvc.Name, want.String()))
	}
	if len(resized) > 0 {
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventVolumesExpanding,
			"Resized kept PersistentVolumeClaims to the spec's sizes: %s", strings.Join(resized, ", "))
	}
	return blocked, nil
}

// checkExpandable returns the Problem that keeps the PVC from growing: a StorageClass that
// does not allow expansion (or none).
func (r *Reconciler) checkExpandable(ctx context.Context, pvc *corev1.PersistentVolumeClaim, tpl string, from, to resource.Quantity) (*specs.Problem, error) {
	blocked := func(why, fix string) *specs.Problem {
		return specs.Problemf(specs.ReasonVolumeExpansionBlocked,
			"%s %s -> %s is not applied: PersistentVolumeClaim %s %s; %s (the server keeps running on %s; volumes never shrink, so the size cannot be set back)",
			specs.SizeField(tpl), from.String(), to.String(), pvc.Name, why, fix, from.String())
	}
	class := specs.StorageClassOf(pvc)
	if class == "" {
		return blocked("has no StorageClass", "it cannot be expanded"), nil
	}
	sc := &storagev1.StorageClass{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: class}, sc); err != nil {
		if apierrors.IsNotFound(err) {
			return blocked("uses StorageClass "+class+", which does not exist", "it cannot be expanded"), nil
		}
		return nil, err
	}
	if sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		return blocked("uses StorageClass "+class+", which does not allow volume expansion",
			"set allowVolumeExpansion: true on it if its driver supports expansion, and the operator expands the volume"), nil
	}
	return nil, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
