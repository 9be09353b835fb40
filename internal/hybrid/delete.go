package hybrid

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// Pods: list a deleted server's pods and delete the ones no controller owns
// (deleteOrphanedPods); the operator never touches a pod a StatefulSet owns.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;delete

// DefaultCleanupTimeout bounds how long a deleted server waits for its PerconaPGCluster to be
// gone (deleteWithServer: true) before the finalizer is removed anyway.
const DefaultCleanupTimeout = 60 * time.Second

// cleanupPoll re-checks a cluster being deleted (its delete event also brings us back).
const cleanupPoll = 5 * time.Second

func (r *Reconciler) cleanupTimeout() time.Duration {
	if r.CleanupTimeout > 0 {
		return r.CleanupTimeout
	}
	return DefaultCleanupTimeout
}

// reconcileDelete runs when the DittoServer is being deleted. The StatefulSet, Services and
// ConfigMap go with the owner references (garbage collection). What holds or opens the data is
// kept unless the user opted in to deleting it:
//   - the PVCs (retention Retain/Retain on the StatefulSet) and the generated credentials (no
//     owner reference) are deleted only with spec.storage.deleteWithServer; otherwise a server
//     created again with the same name adopts them. Credentials that an older operator owned are
//     released first, on every path: the finalizer stays until they are.
//   - the PerconaPGCluster is deleted only with spec.percona.enabled and deleteWithServer both
//     true. In every other case, and on every path (a cleanup timeout, Percona disabled
//     earlier), our owner reference is removed from it before the finalizer goes.
func (r *Reconciler) reconcileDelete(ctx context.Context, ds *v1alpha1.DittoServer) (ctrl.Result, error) {
	if r.ControlPlane != nil {
		r.ControlPlane.Forget(ds.UID)
	}
	if r.Rollouts != nil {
		r.Rollouts.release(client.ObjectKeyFromObject(ds))
	}
	if !controllerutil.ContainsFinalizer(ds, specs.Finalizer) {
		return ctrl.Result{}, nil
	}
	elapsed := time.Since(ds.DeletionTimestamp.Time)
	timedOut := elapsed >= r.cleanupTimeout()

	err := r.deleteOrphanedPods(ctx, ds)
	kept, dataWait := "", ""
	if err == nil {
		kept, dataWait, err = r.cleanupData(ctx, ds, timedOut)
	}
	done, waitMsg := false, ""
	if err == nil {
		done, waitMsg, err = r.cleanupPercona(ctx, ds, timedOut)
	}
	if err == nil && dataWait != "" {
		done, waitMsg = false, strings.TrimSuffix(dataWait+"; "+waitMsg, "; ")
	}
	reason, msg := specs.ReasonDeleting, waitMsg
	switch {
	case err != nil && timedOut:
		// Never drop the finalizer while the cluster or the credentials may still carry our
		// owner reference.
		reason = specs.ReasonCleanupTimeout
		msg = fmt.Sprintf("cleanup has not finished after %s; the finalizer stays until the PerconaPGCluster and the generated credentials are released or gone: %v", r.cleanupTimeout(), err)
	case err != nil:
		msg = fmt.Sprintf("cleanup failed, retrying: %v", err)
	case done:
		msg = "owned objects are garbage-collected; " + kept
	}
	if serr := r.markDeleting(ctx, ds, reason, msg); serr != nil {
		log.FromContext(ctx).Error(serr, "writing the Deleting status")
	}
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case !done:
		// Back when the timeout passes at the latest (the cluster's delete event comes first).
		return ctrl.Result{RequeueAfter: max(min(cleanupPoll, r.cleanupTimeout()-elapsed+10*time.Millisecond), 100*time.Millisecond)}, nil
	}
	r.Recorder.Event(ds, corev1.EventTypeNormal, specs.EventDeleting, "Deleting: owned objects are garbage-collected; "+kept)
	if err := r.removeFinalizer(ctx, ds); err != nil {
		return ctrl.Result{}, err
	}
	r.forgetSecrets(ctx, ds)
	return ctrl.Result{}, nil
}

// deleteOrphanedPods deletes the server's pods that no controller owns. The volume step
// re-creates a StatefulSet by deleting it with orphan propagation (its pod keeps running and
// the new StatefulSet adopts it); an operator stopped between the two, then the server deleted,
// leaves that pod with no owner for the garbage collector to follow, running and holding the
// volumes. Pods a controller owns go with it.
func (r *Reconciler) deleteOrphanedPods(ctx context.Context, ds *v1alpha1.DittoServer) error {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(ds.Namespace), client.MatchingLabels(specs.SelectorLabels(ds))); err != nil {
		return fmt.Errorf("listing the pods of %s: %w", ds.Name, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if metav1.GetControllerOf(pod) != nil || !pod.DeletionTimestamp.IsZero() {
			continue
		}
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting pod %s, left without a StatefulSet: %w", pod.Name, err)
		}
		log.FromContext(ctx).Info("deleted a pod left without a StatefulSet by an interrupted re-creation", "pod", pod.Name)
	}
	return nil
}

// cleanupData keeps the server's volumes and generated credentials (their owner references
// removed), or deletes them with spec.storage.deleteWithServer. It says what happened to them,
// or what it waits for. A deletion that still fails after the cleanup timeout leaves them (the
// safe side) and lets the server go.
//
// The StatefulSet controller creates a pod's missing PVCs for as long as the StatefulSet exists,
// and the StatefulSet goes with the garbage collector only after the DittoServer: a PVC it
// created after our list (a server deleted right after it was created; a CI run of the fault
// suite met it) would outlive the server. So with deleteWithServer the StatefulSet is deleted
// here, the PVCs with it, and the cleanup finishes once the StatefulSet is gone, with a last
// pass over the PVCs.
func (r *Reconciler) cleanupData(ctx context.Context, ds *v1alpha1.DittoServer, timedOut bool) (kept, wait string, err error) {
	if !ds.Spec.Storage.DeleteWithServer {
		if err := r.releaseCredentials(ctx, ds); err != nil {
			return "", "", err
		}
		return "PersistentVolumeClaims and generated credentials are kept: a DittoServer created again with this name adopts them", "", nil
	}
	stsGone, err := r.deleteStatefulSet(ctx, ds)
	var deleted []string
	if err == nil {
		deleted, err = r.deleteData(ctx, ds)
	}
	switch {
	case err == nil && stsGone:
		return "deleted (spec.storage.deleteWithServer)", "", nil
	case err == nil && !timedOut:
		return "", fmt.Sprintf("waiting for StatefulSet %s to be gone before the last pass over its PersistentVolumeClaims (deleted: %s)", ds.Name, orNone(deleted)), nil
	case err == nil:
		err = fmt.Errorf("StatefulSet %s is not gone", ds.Name)
	case !timedOut:
		return "", "", err
	}
	r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventCleanupTimeout,
		"deleting the data (spec.storage.deleteWithServer) has not finished after %s: %v; what is left is kept", r.cleanupTimeout(), err)
	return "deleting the data did not finish; what is left is kept", "", nil
}

// deleteStatefulSet deletes the server's StatefulSet (its pods go with the garbage collector)
// and reports whether it is gone. It reads the cache: the StatefulSet's delete event brings the
// server back.
func (r *Reconciler) deleteStatefulSet(ctx context.Context, ds *v1alpha1.DittoServer) (gone bool, err error) {
	sts := &appsv1.StatefulSet{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}, sts)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading StatefulSet %s: %w", ds.Name, err)
	case !metav1.IsControlledBy(sts, ds):
		// not ours (a server of this name before, or someone else's): not ours to delete
		return true, nil
	case !sts.DeletionTimestamp.IsZero():
		return false, nil
	}
	uid := sts.UID
	err = r.Client.Delete(ctx, sts, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("deleting StatefulSet %s: %w", ds.Name, err)
	}
	return false, nil
}

// deleteData deletes the server's PVCs and generated credentials, and returns their names.
func (r *Reconciler) deleteData(ctx context.Context, ds *v1alpha1.DittoServer) ([]string, error) {
	var deleted []string
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, pvcs, client.InNamespace(ds.Namespace),
		client.MatchingLabels{specs.LabelInstance: ds.Name, specs.LabelPartOf: specs.PartOf}); err != nil {
		return nil, fmt.Errorf("listing the PersistentVolumeClaims of %s: %w", ds.Name, err)
	}
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		if !pvc.DeletionTimestamp.IsZero() {
			continue // deleted already; the protection finalizer holds it while a pod uses it
		}
		if err := r.Client.Delete(ctx, pvc); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("deleting PersistentVolumeClaim %s: %w", pvc.Name, err)
		}
		deleted = append(deleted, "PersistentVolumeClaim "+pvc.Name)
	}
	for _, name := range credentialSecretNames(ds) {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: name}}
		err := r.Client.Delete(ctx, secret)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("deleting Secret %s: %w", name, err)
		default:
			deleted = append(deleted, "Secret "+name)
		}
	}
	if len(deleted) > 0 {
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventDataDeleted, "Deleted with the server (spec.storage.deleteWithServer): %s", strings.Join(deleted, ", "))
	}
	return deleted, nil
}

// cleanupPercona handles the server's PerconaPGCluster. done means no cluster carries our
// owner reference any more (or the cluster is being deleted, as asked, and the wait timed out);
// otherwise waitMsg says what we wait for.
func (r *Reconciler) cleanupPercona(ctx context.Context, ds *v1alpha1.DittoServer, timedOut bool) (done bool, waitMsg string, err error) {
	m, err := r.perconaClusterMeta(ctx, ds)
	if err != nil {
		return false, "", err
	}
	if m == nil || !ownedBy(m, ds) {
		return true, "", nil
	}
	p := ds.Spec.Percona
	if p == nil || !p.Enabled || !p.DeleteWithServer || !metav1.IsControlledBy(m, ds) {
		why := "deleteWithServer is false"
		switch {
		case p == nil || !p.Enabled:
			why = "spec.percona.enabled is false"
		case !metav1.IsControlledBy(m, ds):
			why = "the cluster is not controlled by it"
		}
		_, err := r.orphanPerconaCluster(ctx, ds, "the DittoServer is being deleted and "+why)
		return err == nil, "", err
	}

	if m.DeletionTimestamp.IsZero() {
		uid := m.UID
		err := r.Client.Delete(ctx, m, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, "", fmt.Errorf("deleting PerconaPGCluster %s/%s: %w", m.Namespace, m.Name, err)
		}
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventPerconaDeleted,
			"Deleting PerconaPGCluster %s and its data (spec.percona.deleteWithServer is true)", m.Name)
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
	}
	if !timedOut {
		return false, fmt.Sprintf("waiting for PerconaPGCluster %s to be deleted (finalizers: %s)", m.Name, finalizersOf(m)), nil
	}
	// The cluster is being deleted, as asked, but is not gone yet: let the server go, and take
	// our owner reference off so nothing is left pointing at it.
	if _, err := r.orphanPerconaCluster(ctx, ds, "its deletion continues after the cleanup timeout"); err != nil {
		return false, "", err
	}
	r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventCleanupTimeout,
		"PerconaPGCluster %s is still being deleted after %s (finalizers: %s); the DittoServer goes now and the cluster's deletion continues",
		m.Name, r.cleanupTimeout(), finalizersOf(m))
	return true, "", nil
}

// markDeleting writes phase Deleting and Ready=False with reason and message, keeping the rest of
// the Go-owned status, only when it changes. A CleanupTimeout reason also emits its event.
func (r *Reconciler) markDeleting(ctx context.Context, ds *v1alpha1.DittoServer, reason, msg string) error {
	desired := ds.Status.DeepCopy()
	desired.Conditions = goConditions(desired.Conditions)
	desired.DeployedRelease = nil
	current := desired.DeepCopy()
	desired.Phase = v1alpha1.PhaseDeleting
	old := meta.FindStatusCondition(ds.Status.Conditions, specs.ConditionReady)
	meta.SetStatusCondition(&desired.Conditions, metav1.Condition{
		Type: specs.ConditionReady, Status: metav1.ConditionFalse, Reason: reason,
		Message: "the server is being deleted: " + msg, ObservedGeneration: ds.Generation,
	})
	if equality.Semantic.DeepEqual(current, desired) {
		return nil
	}
	if reason == specs.ReasonCleanupTimeout && (old == nil || old.Reason != reason) {
		r.Recorder.Event(ds, corev1.EventTypeWarning, specs.EventCleanupTimeout, msg)
	}
	return r.applyStatus(ctx, ds, *desired)
}

// forgetSecrets drops the kept copies of the Secrets a deleted server referenced that no other
// server references, so SecretReader holds only what is in use.
func (r *Reconciler) forgetSecrets(ctx context.Context, ds *v1alpha1.DittoServer) {
	for _, name := range specs.ReferencedSecretNames(ds) {
		others := 0
		for _, req := range r.serversReferencing(ctx, indexSecretNames, name, client.InNamespace(ds.Namespace)) {
			if req.Name != ds.Name {
				others++
			}
		}
		if others == 0 {
			r.Secrets.Forget(client.ObjectKey{Namespace: ds.Namespace, Name: name})
		}
	}
}

// removeFinalizer removes our finalizer from a freshly read object, retrying conflicts (the Helm
// reconciler removes its own finalizer concurrently). It never sleeps in the worker.
func (r *Reconciler) removeFinalizer(ctx context.Context, ds *v1alpha1.DittoServer) error {
	key := client.ObjectKeyFromObject(ds)
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		fresh := &v1alpha1.DittoServer{}
		if err = r.APIReader.Get(ctx, key, fresh); err != nil {
			break
		}
		if !controllerutil.RemoveFinalizer(fresh, specs.Finalizer) {
			return nil
		}
		if err = r.Client.Update(ctx, fresh); !apierrors.IsConflict(err) {
			break
		}
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
