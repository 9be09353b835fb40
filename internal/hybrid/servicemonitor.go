package hybrid

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// ServiceMonitors: create, update (server-side apply) and delete the ones the operator makes.
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;create;update;patch;delete

// serviceMonitorRecheck is how soon a server that asks for a ServiceMonitor where the CRD is
// missing looks again (the CRD may be installed later; nothing else would bring it back).
const serviceMonitorRecheck = 5 * time.Minute

// reconcileServiceMonitor makes the ServiceMonitor spec.metrics.serviceMonitor asks for, where
// the Prometheus operator's CRD is installed, and deletes the one it made when the spec no
// longer asks for it (status.serviceMonitor remembers it, so a server that never had one costs
// no request). It never halts the steps after it.
func (r *Reconciler) reconcileServiceMonitor(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	ds := s.ds
	want := specs.WantsServiceMonitor(ds)
	if !want && s.status.serviceMonitor == "" {
		return ctrl.Result{}, proceed, nil
	}
	installed, err := validation.KindServed(r.Client.RESTMapper(), specs.ServiceMonitorGVK)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	if !want {
		if installed {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(specs.ServiceMonitorGVK)
			u.SetNamespace(ds.Namespace)
			u.SetName(s.status.serviceMonitor)
			if err := r.Client.Delete(ctx, u); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, halt, fmt.Errorf("deleting ServiceMonitor %s: %w", u.GetName(), err)
			}
		}
		s.status.serviceMonitor = ""
		return ctrl.Result{}, proceed, nil
	}
	if !installed {
		s.status.warnings = append(s.status.warnings,
			"spec.metrics.serviceMonitor.enabled: the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed; install the Prometheus operator (the operator looks again every 5 minutes and on any change of the server), or scrape the -metrics Service another way")
		return ctrl.Result{RequeueAfter: serviceMonitorRecheck}, proceed, nil
	}
	desired := specs.DesiredServiceMonitor(ds)
	if err := controllerutil.SetControllerReference(ds, desired, r.Scheme); err != nil {
		return ctrl.Result{}, halt, err
	}
	if err := r.applyUnstructured(ctx, desired, desired); err != nil {
		return ctrl.Result{}, halt, err
	}
	s.status.serviceMonitor = desired.GetName()
	return ctrl.Result{}, proceed, nil
}
