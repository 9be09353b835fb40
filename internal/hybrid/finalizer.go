package hybrid

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// reconcileDelete runs when the DittoServer is being deleted. The StatefulSet, Services,
// ConfigMap and generated Secrets go with the owner references (garbage collection); the PVCs
// are never deleted by the operator (retention Retain/Retain on the StatefulSet).
func (r *Reconciler) reconcileDelete(ctx context.Context, ds *v1alpha1.DittoServer) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ds, Finalizer) {
		return ctrl.Result{}, nil
	}
	r.Recorder.Event(ds, corev1.EventTypeNormal, EventDeleting, "Deleting: owned objects are garbage-collected, PersistentVolumeClaims are kept")
	return ctrl.Result{}, r.removeFinalizer(ctx, ds)
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
		if !controllerutil.RemoveFinalizer(fresh, Finalizer) {
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
