package hybrid

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// apply server-side-applies obj (a typed object with its TypeMeta set), controlled by ds, as
// the Go controller's field manager, and decodes the server's answer back into obj. The status
// (also of claim templates) and the empty creationTimestamps the Go types marshal are left
// out: applying them would make the operator own fields it never meant to set.
func (r *Reconciler) apply(ctx context.Context, ds *v1alpha1.DittoServer, obj client.Object) error {
	if err := controllerutil.SetControllerReference(ds, obj, r.Scheme); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	delete(m, "status")
	if claims, ok, _ := unstructured.NestedSlice(m, "spec", "volumeClaimTemplates"); ok {
		for _, c := range claims {
			if cm, ok := c.(map[string]any); ok {
				delete(cm, "status")
			}
		}
		_ = unstructured.SetNestedSlice(m, claims, "spec", "volumeClaimTemplates")
	}
	dropNullTimestamps(m)
	return r.applyUnstructured(ctx, &unstructured.Unstructured{Object: m}, obj)
}

// applyUnstructured applies u and decodes the server's answer into into.
func (r *Reconciler) applyUnstructured(ctx context.Context, u *unstructured.Unstructured, into client.Object) error {
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(specs.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

// dropNullTimestamps removes every creationTimestamp: null (object metadata, pod template,
// claim templates).
func dropNullTimestamps(m map[string]any) {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			if k == "creationTimestamp" {
				delete(m, k)
			}
		case map[string]any:
			dropNullTimestamps(t)
		case []any:
			for _, item := range t {
				if im, ok := item.(map[string]any); ok {
					dropNullTimestamps(im)
				}
			}
		}
	}
}

// ownedBy reports whether any owner reference of m points at ds.
func ownedBy(m metav1.Object, ds *v1alpha1.DittoServer) bool {
	return slices.ContainsFunc(m.GetOwnerReferences(), func(ref metav1.OwnerReference) bool { return ref.UID == ds.UID })
}

// disown removes ds's owner references from obj, as just read, with an optimistic lock: the
// garbage collector no longer deletes obj with the server.
func (r *Reconciler) disown(ctx context.Context, obj client.Object, ds *v1alpha1.DittoServer) error {
	orig, ok := obj.DeepCopyObject().(client.Object)
	if !ok {
		return fmt.Errorf("%T is not an object", obj)
	}
	obj.SetOwnerReferences(slices.DeleteFunc(slices.Clone(obj.GetOwnerReferences()), func(ref metav1.OwnerReference) bool { return ref.UID == ds.UID }))
	return r.Client.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}
