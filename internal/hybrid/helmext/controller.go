// Package helmext adapts helm-operator-plugins v0.9.1 to the operator's needs: a controller of
// our own that drives the library's reconciler, the status client that lets it share a status
// with the Go controller, the release cache, cache-backed drift repair, recovery of stale
// pending releases and watches.yaml loading from the binary. It holds no DittoFS rules; the
// names it needs (finalizers, condition types, field owners) come from internal/specs.
package helmext

import (
	"reflect"

	"github.com/operator-framework/helm-operator-plugins/pkg/reconciler"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// SetupController drives a helm-operator-plugins reconciler from a controller of our own.
//
// The library's controller watches the primary kind without a predicate, so every status write
// (the Go controller's and its own) triggers a full reconcile with a server-side dry-run
// upgrade. Here the library still sets itself up (defaults, clients), but on a manager shim
// that drops its controller; our controller calls the same Reconcile on the events that
// matter: spec (generation), deletion, finalizers, labels and annotations (pause and
// install/upgrade annotations), and changes to the rendered ConfigMaps and Services (drift).
func SetupController(mgr ctrl.Manager, r *reconciler.Reconciler, workers int) error {
	if err := r.SetupWithManager(&droppingManager{Manager: mgr}); err != nil {
		return err
	}
	owned := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1alpha1.DittoServer{}, handler.OnlyControllerOwner())
	drift := builder.WithPredicates(predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
		},
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("dittoserver-helm").
		For(&v1alpha1.DittoServer{}, builder.WithPredicates(helmRelevantChange())).
		Watches(&corev1.ConfigMap{}, owned, drift).
		Watches(&corev1.Service{}, owned, drift).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// helmRelevantChange selects the DittoServer events the Helm reconciler must act on.
//
// Create events pass only for objects that already carry the Go controller's finalizer or are
// being deleted: existing servers when the operator starts (a spec changed while it was down
// gets upgraded; a deletion the Go controller finished before a kill still needs its release
// uninstalled and Helm's finalizer removed), not brand-new ones, where the Go controller adds
// both finalizers in one write and that update starts the Helm reconcile (no racing finalizer
// writes). Updates pass on spec (generation),
// labels, annotations (pause, install/upgrade options), deletion and finalizer changes; status
// writes do not.
func helmRelevantChange() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			return controllerutil.ContainsFinalizer(e.Object, specs.Finalizer) || !e.Object.GetDeletionTimestamp().IsZero()
		},
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetGeneration() != n.GetGeneration() ||
				!reflect.DeepEqual(o.GetLabels(), n.GetLabels()) ||
				!reflect.DeepEqual(o.GetAnnotations(), n.GetAnnotations()) ||
				!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
				!reflect.DeepEqual(o.GetFinalizers(), n.GetFinalizers())
		},
		DeleteFunc: func(event.DeleteEvent) bool { return false },
	}
}

// droppingManager hands the library everything from the real manager but never starts the
// controller it creates (ours replaces it).
type droppingManager struct {
	manager.Manager
}

func (m *droppingManager) Add(r manager.Runnable) error {
	if _, isController := r.(controller.Controller); isController {
		return nil
	}
	return m.Manager.Add(r)
}
