package hybrid

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// writeStatus applies the Go-owned status with server-side apply, only when it changed, and
// emits the events of the condition transitions (events.go).
func (r *Reconciler) writeStatus(ctx context.Context, ds *v1alpha1.DittoServer, o *observed) error {
	if o.deferWrite && o.failure == nil {
		return nil
	}
	desired := computeStatus(ds, o)
	current := ds.Status.DeepCopy()
	current.Conditions = goConditions(current.Conditions)
	current.DeployedRelease = nil
	if equality.Semantic.DeepEqual(*current, desired) {
		return nil
	}
	key := statusKey(desired)
	if last, ok := r.lastStatus.Load(ds.UID); ok && last.(appliedStatus) == (appliedStatus{from: ds.ResourceVersion, key: key}) {
		// Computed from the same object as our last write, with the same result: the cache has
		// not caught up with that write yet. Applying (and emitting events) again would repeat it.
		return nil
	}
	r.emitEvents(ds, desired)
	if err := r.applyStatus(ctx, ds, desired); err != nil {
		r.lastStatus.Delete(ds.UID)
		return err
	}
	r.lastStatus.Store(ds.UID, appliedStatus{from: ds.ResourceVersion, key: key})
	r.observeDurations(ds, desired, time.Now())
	return nil
}

// appliedStatus is the last status write of a server: the resourceVersion of the object it
// was computed from and statusKey of what was written.
type appliedStatus struct{ from, key string }

// statusKey identifies a desired status regardless of condition transition times (which
// computeStatus sets to now for every condition that changes).
func statusKey(st v1alpha1.DittoServerStatus) string {
	st.Conditions = append([]metav1.Condition(nil), st.Conditions...)
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	key, _ := specs.ObjectHash(st)
	return key
}

func (r *Reconciler) applyStatus(ctx context.Context, ds *v1alpha1.DittoServer, status v1alpha1.DittoServerStatus) error {
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	statusMap := map[string]any{}
	if err := json.Unmarshal(raw, &statusMap); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       v1alpha1.DittoServerKind,
		"metadata":   map[string]any{"name": ds.Name, "namespace": ds.Namespace},
		"status":     statusMap,
	}}
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(specs.FieldOwner), client.ForceOwnership); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}
