// Package hybrid is the Go side of the hybrid operator and the wiring of both reconcilers on
// the same DittoServer: the Helm reconciler (helm-operator-plugins, adapted in helmext)
// renders the ConfigMap and Services from the embedded chart; the Go controller here owns the
// generated Secrets, the PerconaPGCluster, the StatefulSet, the DittoFS control-plane step and
// the status. docs/ARCHITECTURE.md has the pipeline and the map of the packages.
package hybrid

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// RBAC of both reconcilers, rule by rule:
//   - dittoservers: watch them, add and remove the finalizers (update), write the status.
//   - statefulsets: the Go controller applies the server's StatefulSet, re-creates it to grow
//     volumes (delete with orphan propagation).
//   - configmaps, services, networkpolicies: the Helm reconciler installs, upgrades, repairs and
//     uninstalls the chart's objects (the ConfigMap, the Services, the NetworkPolicy).
//   - secrets: Helm's release storage (create, update, delete revisions); the generated
//     credentials and the PostgreSQL env Secret (create, update, delete with deleteWithServer);
//     the user's referenced Secrets (get; the cache holds only their metadata, by watch).
//   - events: both reconcilers record events on the DittoServer.
//
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler is the Go controller: the steps of reconcileServer, deletion and the status.
type Reconciler struct {
	// Client reads from the manager's cache and writes.
	Client client.Client
	// APIReader reads what the cache does not hold or must not be stale (PVCs, the
	// PerconaPGCluster, the DittoServer when removing the finalizer).
	APIReader client.Reader
	// Secrets reads every Secret the server depends on (SecretReader).
	Secrets *SecretReader
	// ClaimMeta holds the metadata of the operator's PersistentVolumeClaims (nil: not used).
	ClaimMeta client.Reader
	Scheme    *runtime.Scheme
	Recorder  record.EventRecorder
	Renderer  *specs.Renderer
	// Validator is the guard: the same checks as the validating webhook.
	Validator *validation.Validator
	// ClusterDomain is the cluster's DNS domain, named in the REST API's certificate.
	ClusterDomain string
	// CleanupTimeout bounds the wait for a PerconaPGCluster deleted with its server; 0 means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// ControlPlane applies the spec through the DittoFS REST API; nil turns the step off.
	ControlPlane *controlplane.Step
	// Identity identifies this operator on the StatefulSets it writes (AnnotationOperator);
	// Rollouts bounds the rollouts a change of it causes (nil: unbounded).
	Identity string
	Rollouts *rolloutGate

	perconaWatch *perconaWatch
	// lastStatus is the last status write per server UID (appliedStatus).
	lastStatus sync.Map
	// rendered is the last render per server UID (renderedConfig).
	rendered sync.Map
	// matchedStatefulSet is, per server UID, the StatefulSet generation last found to match
	// the desired spec (matchedStatefulSet); validCert, the certificate Secret revision last
	// found valid (validCertificate). Both spare the repeated checks of a server's reconciles.
	matchedStatefulSet, validCert sync.Map
	// creating holds the UIDs of servers whose first status this process wrote and that have
	// not been Ready since (dittofs_server_time_to_ready_seconds).
	creating sync.Map
}

// scope is one reconcile of one server. The steps run in order; each reads what the earlier
// ones put here and adds its own part. status is what the status is computed from (status.go).
type scope struct {
	ds       *v1alpha1.DittoServer
	findings validation.Findings
	db       perconaOutcome
	secrets  *resolvedSecrets
	// configYAML is the config.yaml the spec renders to, and hash its config hash; legacyHash
	// is the hash operators before this one computed (with the admin password).
	configYAML, hash, legacyHash string
	// configMap is the ConfigMap Helm rendered (awaitHelm reads it).
	configMap *corev1.ConfigMap
	// volumes are the claim templates of the StatefulSet.
	volumes []string
	status  observed
	// created lists the objects the steps created that the user needs to know of (the
	// generated credentials), for one Created event.
	created creations
}

// creations collects what one reconcile created, so that a new server gets one Created event
// ("Created Secret a (...), Secret b (...)") rather than one per object.
type creations []string

func (c *creations) add(format string, args ...any) { *c = append(*c, fmt.Sprintf(format, args...)) }

// emit records the Created event, if anything was created.
func (c creations) emit(recorder record.EventRecorder, ds *v1alpha1.DittoServer) {
	if len(c) > 0 {
		recorder.Event(ds, corev1.EventTypeNormal, specs.EventCreated, "Created "+strings.Join(c, ", "))
	}
}

// step is one phase of reconcileServer. It returns when to come back (merged over all steps by
// lowestNonZeroResult) and whether the later steps may run: they need what this one provides.
type step func(ctx context.Context, s *scope) (result ctrl.Result, proceed bool, err error)

const (
	proceed = true
	halt    = false
)

// Reconcile converges one DittoServer. Status is computed from what the steps observed and
// written once, at the end, only when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &v1alpha1.DittoServer{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		r.lastStatus.Delete(ds.UID)
		r.creating.Delete(ds.UID)
		r.rendered.Delete(ds.UID)
		r.matchedStatefulSet.Delete(ds.UID)
		r.validCert.Delete(ds.UID)
		return r.reconcileDelete(ctx, ds)
	}
	if !controllerutil.ContainsFinalizer(ds, specs.Finalizer) {
		// Add the Helm reconciler's finalizer in the same write: both reconcilers start on the
		// same create event and would otherwise race two Updates (one of them conflicting).
		controllerutil.AddFinalizer(ds, specs.Finalizer)
		controllerutil.AddFinalizer(ds, specs.HelmUninstallFinalizer)
		if err := r.Client.Update(ctx, ds); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	// Operator-wide override values set fields of every server's spec, for the Go controller's
	// objects (the StatefulSet, the PerconaPGCluster, ...) as for the Helm reconciler's; they
	// fit the spec (checked at startup). The object itself is never written back.
	if r.Renderer != nil {
		effective, err := specs.ApplyOverrides(ds, r.Renderer.Overrides)
		if err != nil {
			return ctrl.Result{}, err
		}
		ds = effective
	}
	s := &scope{ds: ds, status: newObserved(ds)}
	result, err := r.reconcileServer(ctx, s)
	s.created.emit(r.Recorder, ds)
	if err != nil {
		s.status.failure = err
	}
	if werr := r.writeStatus(ctx, ds, &s.status); werr != nil && err == nil {
		err = werr
	}
	return result, err
}

// reconcileServer runs the steps in order, until one halts or fails.
func (r *Reconciler) reconcileServer(ctx context.Context, s *scope) (ctrl.Result, error) {
	steps := []step{
		r.validateSpec,            // the guard: the webhook's checks, for clusters without it
		r.reconcileDatabase,       // Percona first: a database that is not ready holds the pod back
		r.awaitHelm,               // a new server's objects wait for the ConfigMap Helm renders
		r.reconcileSecrets,        // generated Secrets, referenced Secrets checked and hashed
		r.reconcileConfig,         // the ConfigMap Helm rendered matches the spec: the config hash
		r.reconcileStatefulSet,    // the StatefulSet with the hash, larger volumes
		r.reconcileServiceMonitor, // where the Prometheus operator is installed and the spec asks
		r.observeAddresses,        // the -file Service's IPs, for status.addresses
		r.reconcileControlPlane,
	}
	var results []ctrl.Result
	var err error
	for _, run := range steps {
		var res ctrl.Result
		var next bool
		res, next, err = run(ctx, s)
		results = append(results, res)
		if err != nil || !next {
			break
		}
	}
	if !s.status.stsObserved {
		// A step halted or failed before the StatefulSet step: the status still shows the pods.
		if oerr := r.observeStatefulSet(ctx, s); oerr != nil && err == nil {
			err = oerr
		}
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return lowestNonZeroResult(results...), nil
}

// lowestNonZeroResult merges the steps' results: the soonest requeue wins.
func lowestNonZeroResult(results ...ctrl.Result) ctrl.Result {
	var out ctrl.Result
	for _, r := range results {
		if r.RequeueAfter > 0 && (out.RequeueAfter == 0 || r.RequeueAfter < out.RequeueAfter) {
			out.RequeueAfter = r.RequeueAfter
		}
	}
	return out
}
