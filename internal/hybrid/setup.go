package hybrid

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"time"

	"github.com/operator-framework/helm-operator-plugins/pkg/reconciler"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/hybrid/helmext"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// Options configure both reconcilers.
type Options struct {
	// Watches is the content of watches.yaml; Charts holds the charts it names.
	Watches []byte
	Charts  fs.FS
	// Namespaces the manager watches (empty: all). The user-Secret watch uses the same scope.
	Namespaces []string
	// OperatorNamespace is the operator's own namespace; each server's NetworkPolicy lets it
	// reach the API ("" when the operator runs outside the cluster: spec.networkPolicy.apiFrom
	// must then allow it).
	OperatorNamespace string
	// HelmConcurrency and GoConcurrency are the workers of each controller; 0 keeps the
	// watches.yaml value (Helm) or 2 (Go).
	HelmConcurrency int
	GoConcurrency   int
	// WaitForDeletionTimeout bounds how long a Helm worker waits for a deleted DittoServer to go.
	WaitForDeletionTimeout time.Duration
	// MaxReleaseHistory is the number of Helm release revisions kept.
	MaxReleaseHistory int
	// EnableWebhook serves the validating webhook (needs serving certificates).
	EnableWebhook bool
	// CleanupTimeout bounds how long a deleted server waits for its PerconaPGCluster to be
	// deleted (deleteWithServer) before its finalizer goes; 0 means DefaultCleanupTimeout.
	// Orphaning is never skipped, whatever the timeout.
	CleanupTimeout time.Duration
	// OverrideValues are operator-wide overrideValues (strvals keys into the DittoServer spec,
	// values with ${ENV} expanded) set outside watches.yaml (--override-values-file,
	// DITTOFS_OVERRIDE_VALUES); they win over watches.yaml's for the same key.
	OverrideValues map[string]string
	// ControlPlane configures what the operator does through the DittoFS REST API
	// (docs/CONTROLPLANE.md); the zero value is on, with the <name>-api Service as endpoint.
	ControlPlane controlplane.Options
	// Identity identifies this operator's rendering: its build and the operator-wide settings
	// that change every server's pod template (OperatorIdentity). MaxConcurrentRollouts bounds
	// the servers whose pod restarts because Identity changed (0: no bound); a slot is freed when
	// the rollout ends or after RolloutSlotTimeout (0: DefaultRolloutSlotTimeout).
	Identity              string
	MaxConcurrentRollouts int
	RolloutSlotTimeout    time.Duration
}

// Setup registers the Helm reconciler(s) from watches.yaml and the Go controller.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	renderer, err := setupHelm(mgr, opts)
	if err != nil {
		return err
	}
	if !mgr.GetScheme().Recognizes(specs.PerconaGVK) {
		return fmt.Errorf("the manager's scheme lacks %s: add pgv2.percona.com/v2 (percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2.AddToScheme)", specs.PerconaGVK)
	}
	if err := registerStatusMetrics(mgr.GetCache()); err != nil {
		return fmt.Errorf("registering the server metrics: %w", err)
	}
	secrets := NewSecretReader(mgr.GetClient(), mgr.GetAPIReader())
	validator := &validation.Validator{
		Reader:       mgr.GetClient(),
		SecretReader: secrets,
		Mapper:       mgr.GetRESTMapper(),
	}
	if opts.EnableWebhook {
		// The webhook also renders the chart, so bad spec.chartValues are refused at admission;
		// the guard leaves that to the config step, which renders anyway (once per reconcile).
		withRender := *validator
		withRender.Renderer = renderer
		if err := validation.SetupWebhook(mgr, &withRender, opts.Namespaces); err != nil {
			return fmt.Errorf("setting up the validating webhook: %w", err)
		}
	}
	// The core/v1 event recorder, as the Helm reconciler uses: one kind of event per object.
	recorder := mgr.GetEventRecorderFor("dittoserver-go") //nolint:staticcheck // see above
	r := &Reconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Secrets:        secrets,
		Scheme:         mgr.GetScheme(),
		Recorder:       recorder,
		Renderer:       renderer,
		Validator:      validator,
		CleanupTimeout: opts.CleanupTimeout,
		ClusterDomain:  cmp.Or(opts.ControlPlane.ClusterDomain, controlplane.DefaultClusterDomain),
		Identity:       opts.Identity,
	}
	if opts.MaxConcurrentRollouts > 0 && opts.Identity != "" {
		r.Rollouts = newRolloutGate(opts.MaxConcurrentRollouts, opts.RolloutSlotTimeout)
	}
	if !opts.ControlPlane.Disabled {
		r.ControlPlane = controlplane.New(opts.ControlPlane, controlplane.Deps{
			Client: mgr.GetClient(), Secrets: secrets, Pods: mgr.GetAPIReader(), Recorder: recorder,
		})
	}
	return r.SetupWithManager(ctx, mgr, opts)
}

// setupHelm registers a helm-operator-plugins reconciler per watches.yaml entry, and returns
// the renderer of the DittoServer chart (the Go controller renders the same config in-process).
func setupHelm(mgr ctrl.Manager, opts Options) (*specs.Renderer, error) {
	ws, err := helmext.LoadWatches(opts.Watches, opts.Charts)
	if err != nil {
		return nil, err
	}
	chartNames := make([]string, 0, len(ws))
	for _, w := range ws {
		chartNames = append(chartNames, w.Chart.Name())
	}
	getter, err := helmext.NewActionClientGetter(mgr, chartNames)
	if err != nil {
		return nil, err
	}
	var renderer *specs.Renderer
	for _, w := range ws {
		workers := 2
		if w.MaxConcurrentReconciles != nil {
			workers = *w.MaxConcurrentReconciles
		}
		if opts.HelmConcurrency > 0 {
			workers = opts.HelmConcurrency
		}
		period := time.Duration(0)
		if w.ReconcilePeriod != nil {
			period = w.ReconcilePeriod.Duration
		}
		isDittoServer := w.GroupVersionKind == v1alpha1.GroupVersionKind()
		if isDittoServer {
			if w.OverrideValues, err = mergeOverrides(w.OverrideValues, opts.OverrideValues); err != nil {
				return nil, err
			}
			// A bad override would fail every server's reconcile: refuse to start instead.
			if err := specs.CheckOverrides(w.Chart, w.OverrideValues, opts.OperatorNamespace); err != nil {
				return nil, err
			}
		}
		ropts := []reconciler.Option{
			reconciler.WithChart(*w.Chart),
			reconciler.WithGroupVersionKind(w.GroupVersionKind),
			reconciler.WithOverrideValues(w.OverrideValues),
			reconciler.SkipDependentWatches(!*w.WatchDependentResources),
			reconciler.WithMaxConcurrentReconciles(workers),
			reconciler.WithReconcilePeriod(period),
			reconciler.WithMaxReleaseHistory(opts.MaxReleaseHistory),
			reconciler.WithWaitForDeletionTimeout(opts.WaitForDeletionTimeout),
			reconciler.WithSelector(*w.Selector),
			reconciler.WithActionClientGetter(helmext.WrapActionClients(getter, mgr.GetClient())),
			reconciler.WithClient(helmext.NewStatusClient(mgr.GetClient())),
			reconciler.WithLog(ctrl.Log.WithName("helm").WithName(w.Kind)),
		}
		if isDittoServer {
			ropts = append(ropts,
				reconciler.WithValueTranslator(specs.Translator{Chart: w.Chart, OperatorNamespace: opts.OperatorNamespace}),
				// The typed DittoServer is already in the scheme (double registration panics).
				reconciler.SkipPrimaryGVKSchemeRegistration(true),
			)
			renderer = &specs.Renderer{Chart: w.Chart, Overrides: w.OverrideValues, OperatorNamespace: opts.OperatorNamespace}
		}
		r, err := reconciler.New(ropts...)
		if err != nil {
			return nil, fmt.Errorf("helm reconciler for %s: %w", w.GroupVersionKind, err)
		}
		if isDittoServer {
			err = helmext.SetupController(mgr, r, workers)
		} else {
			err = r.SetupWithManager(mgr)
		}
		if err != nil {
			return nil, fmt.Errorf("setting up the helm reconciler for %s: %w", w.GroupVersionKind, err)
		}
	}
	if renderer == nil {
		return nil, fmt.Errorf("watches.yaml has no entry for %s", v1alpha1.GroupVersionKind())
	}
	return renderer, nil
}

// mergeOverrides adds the operator-wide override values (expanded like watches.yaml's) to a
// watch's; they win for the same key.
func mergeOverrides(watch, extra map[string]string) (map[string]string, error) {
	if len(extra) == 0 {
		return watch, nil
	}
	expanded, err := helmext.ExpandOverrideValues(extra)
	if err != nil {
		return nil, err
	}
	merged := maps.Clone(watch)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, expanded)
	return merged, nil
}

// Field indexes of DittoServers: the Secrets and StorageClasses they reference.
const (
	indexSecretNames  = "dittofs.secretNames"
	indexStorageClass = "dittofs.storageClasses"
)

// SetupWithManager wires the Go controller's watches.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.DittoServer{}, indexSecretNames, func(o client.Object) []string {
		return specs.ReferencedSecretNames(o.(*v1alpha1.DittoServer))
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.DittoServer{}, indexStorageClass, func(o client.Object) []string {
		return specs.ReferencedStorageClasses(o.(*v1alpha1.DittoServer))
	}); err != nil {
		return err
	}

	// User Secrets are not in the manager's cache (it holds only Secrets the operator labelled,
	// and never Helm release Secrets). A metadata-only cache of Secrets tells us when a
	// referenced one changes; the data is then read through the API reader. The same cache
	// holds the metadata of the servers' PersistentVolumeClaims (labelled from the claim
	// templates): a new StatefulSet lists a server's claims only when some are there.
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
	claimMeta := &metav1.PartialObjectMetadata{}
	claimMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"))
	secretCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultTransform:  cache.TransformStripManagedFields(),
		DefaultNamespaces: namespaceConfigs(opts.Namespaces),
		ByObject:          map[client.Object]cache.ByObject{claimMeta: {Label: specs.OperatorObjects()}},
	})
	if err != nil {
		return fmt.Errorf("creating the Secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretCache); err != nil {
		return err
	}
	r.Secrets.Meta = secretCache
	// Registered now, the claims' informer starts (and syncs) with the cache.
	if _, err := secretCache.GetInformer(ctx, claimMeta); err != nil {
		return fmt.Errorf("the PersistentVolumeClaim metadata informer: %w", err)
	}
	r.ClaimMeta = secretCache
	secretToServers := handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, s *metav1.PartialObjectMetadata) []reconcile.Request {
		reqs := r.serversReferencing(ctx, indexSecretNames, s.Name, client.InNamespace(s.Namespace))
		if len(reqs) == 0 {
			// Deleted, or no longer referenced: no copy to keep.
			r.Secrets.Forget(client.ObjectKeyFromObject(s))
		}
		return reqs
	})
	storageClassToServers := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.serversReferencing(ctx, indexStorageClass, o.GetName())
	})

	pw, err := newPerconaWatch(mgr, opts.Namespaces)
	if err != nil {
		return err
	}
	r.perconaWatch = pw

	workers := opts.GoConcurrency
	if workers <= 0 {
		workers = 2
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("dittoserver-go").
		For(&v1alpha1.DittoServer{}, builder.WithPredicates(specOrHelmStatusChanged())).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.ConfigMap{}, builder.WithPredicates(r.configMapCreateAfterDeploy())).
		// The Services Helm renders: only a change of the addresses in status.addresses.
		Owns(&corev1.Service{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			DeleteFunc: func(event.DeleteEvent) bool { return false },
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, okOld := e.ObjectOld.(*corev1.Service)
				n, okNew := e.ObjectNew.(*corev1.Service)
				return okOld && okNew && !slices.Equal(serviceAddresses(o), serviceAddresses(n))
			},
		})).
		// The operator's Secrets: the generated credentials carry no owner reference (they are
		// kept with the data), so they are mapped to their server by its instance label.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(serverOfLabelledObject)).
		WatchesRawSource(source.Kind(secretCache, secretMeta, secretToServers, secretDataChanged())).
		Watches(&storagev1.StorageClass{}, storageClassToServers, builder.WithPredicates(predicate.Funcs{
			// Only a change of allowVolumeExpansion matters (a blocked expansion can proceed).
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, okOld := e.ObjectOld.(*storagev1.StorageClass)
				n, okNew := e.ObjectNew.(*storagev1.StorageClass)
				return okOld && okNew && ptr.Deref(o.AllowVolumeExpansion, false) != ptr.Deref(n.AllowVolumeExpansion, false)
			},
		})).
		WatchesRawSource(pw.crdSource(r.perconaServers)).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers})
	if r.Rollouts != nil {
		b = b.WatchesRawSource(r.Rollouts.source()) // servers woken when a rollout slot frees
	}
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	pw.setController(c)
	return nil
}

// serverOfLabelledObject maps an object the operator labelled to its server.
func serverOfLabelledObject(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[specs.LabelInstance]
	if name == "" || o.GetLabels()[specs.LabelPartOf] != specs.PartOf {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// serversReferencing lists the DittoServers whose index entry matches value.
func (r *Reconciler) serversReferencing(ctx context.Context, index, value string, opts ...client.ListOption) []reconcile.Request {
	list := &v1alpha1.DittoServerList{}
	if err := r.Client.List(ctx, list, append(opts, client.MatchingFields{index: value})...); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// specOrHelmStatusChanged ignores status-only updates of a DittoServer (most of them are our
// own writes), except when a Helm-owned condition changes status: Ready depends on Deployed.
func specOrHelmStatusChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, okOld := e.ObjectOld.(*v1alpha1.DittoServer)
			n, okNew := e.ObjectNew.(*v1alpha1.DittoServer)
			if !okOld || !okNew {
				return true
			}
			// A finalizer removed matters (deletion goes on, or ours must be put back); one
			// added is the Go controller's own write, whose reconcile carried on after it.
			if o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
				len(n.Finalizers) < len(o.Finalizers) {
				return true
			}
			for _, t := range specs.HelmConditionTypes {
				if conditionStatus(o, t) != conditionStatus(n, t) {
					return true
				}
			}
			return false
		},
	}
}

func conditionStatus(ds *v1alpha1.DittoServer, t string) metav1.ConditionStatus {
	for _, c := range ds.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// configMapCreateAfterDeploy drops the create event of a ConfigMap whose DittoServer has no
// Deployed=True yet: that is a Helm install in flight, whose status write (Deployed) follows at
// once and brings the server back through specOrHelmStatusChanged. Reconciling on the create
// as well costs a status write that the next one replaces. A ConfigMap re-created later (drift
// repair, a restart's initial list) passes.
func (r *Reconciler) configMapCreateAfterDeploy() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool {
			owner := metav1.GetControllerOf(e.Object)
			if owner == nil || owner.Kind != v1alpha1.DittoServerKind {
				return true
			}
			ds := &v1alpha1.DittoServer{}
			if err := r.Client.Get(context.Background(), client.ObjectKey{Namespace: e.Object.GetNamespace(), Name: owner.Name}, ds); err != nil {
				return true
			}
			return conditionStatus(ds, specs.ConditionDeployed) == metav1.ConditionTrue
		},
	}
}

// secretDataChanged passes Secret events whose content may have changed (the resourceVersion
// moves on every write; metadata-only watches cannot see the data itself).
func secretDataChanged() predicate.TypedPredicate[*metav1.PartialObjectMetadata] {
	return predicate.TypedFuncs[*metav1.PartialObjectMetadata]{
		UpdateFunc: func(e event.TypedUpdateEvent[*metav1.PartialObjectMetadata]) bool {
			return e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
		},
	}
}

// CacheOptions scopes the manager's cache: only Secrets, ConfigMaps, Services and StatefulSets
// labelled by the operator are cached (never Helm release Secrets, which are large and carry
// owner=helm), managedFields are stripped, and namespaces come from WATCH_NAMESPACE.
func CacheOptions(namespaces []string) cache.Options {
	selector := cache.ByObject{Label: specs.OperatorObjects()}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:              selector,
			&corev1.ConfigMap{}:           selector,
			&corev1.Service{}:             selector,
			&appsv1.StatefulSet{}:         selector,
			&networkingv1.NetworkPolicy{}: selector,
		},
		DefaultNamespaces: namespaceConfigs(namespaces),
	}
}

// namespaceConfigs is the cache configuration of the watched namespaces (nil: all).
func namespaceConfigs(namespaces []string) map[string]cache.Config {
	if len(namespaces) == 0 {
		return nil
	}
	out := make(map[string]cache.Config, len(namespaces))
	for _, ns := range namespaces {
		out[ns] = cache.Config{}
	}
	return out
}
