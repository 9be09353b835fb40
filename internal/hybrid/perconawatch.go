package hybrid

import (
	"context"
	"fmt"
	"sync"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// crdGVK is the kind of CustomResourceDefinitions (watched as metadata only).
var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// perconaWatch watches PerconaPGClusters only once their CRD is served, so the operator runs
// without the Percona operator and notices it being installed later without a restart:
//   - a metadata-only watch of the one CRD perconapgclusters.pgv2.percona.com re-enqueues the
//     Percona-enabled servers whenever that CRD appears, changes or goes;
//   - the first reconcile that finds the kind served starts the cluster watch (a cache holding
//     only clusters labelled by the operator) through the controller's Watch.
type perconaWatch struct {
	mgr        ctrl.Manager
	namespaces []string
	crdCache   cache.Cache

	mu      sync.Mutex
	ctrl    controller.Controller
	started bool
}

// newPerconaWatch creates the CRD metadata cache and adds it to the manager.
func newPerconaWatch(mgr ctrl.Manager, namespaces []string) (*perconaWatch, error) {
	crdCache, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:               mgr.GetScheme(),
		Mapper:               mgr.GetRESTMapper(),
		DefaultFieldSelector: fields.OneTermEqualSelector("metadata.name", specs.PerconaCRDName),
		DefaultTransform:     cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the CRD metadata cache: %w", err)
	}
	if err := mgr.Add(crdCache); err != nil {
		return nil, err
	}
	return &perconaWatch{mgr: mgr, namespaces: namespaces, crdCache: crdCache}, nil
}

// crdSource re-enqueues the Percona-enabled servers on every event of the Percona CRD.
func (w *perconaWatch) crdSource(servers func(context.Context) []reconcile.Request) source.TypedSource[reconcile.Request] {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdGVK)
	return source.Kind(w.crdCache, crd, handler.TypedEnqueueRequestsFromMapFunc(
		func(ctx context.Context, _ *metav1.PartialObjectMetadata) []reconcile.Request { return servers(ctx) }))
}

// crdPresent reports whether the Percona CRD object exists (it may not be served yet).
func (w *perconaWatch) crdPresent(ctx context.Context) bool {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdGVK)
	return w.crdCache.Get(ctx, types.NamespacedName{Name: specs.PerconaCRDName}, crd) == nil
}

func (w *perconaWatch) setController(c controller.Controller) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctrl = c
}

// ensure starts the PerconaPGCluster watch once. Call it only when the kind is served.
func (w *perconaWatch) ensure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.ctrl == nil {
		return nil
	}
	opts := cache.Options{
		Scheme:               w.mgr.GetScheme(),
		Mapper:               w.mgr.GetRESTMapper(),
		DefaultLabelSelector: specs.OperatorObjects(),
		DefaultTransform:     cache.TransformStripManagedFields(),
		DefaultNamespaces:    namespaceConfigs(w.namespaces),
	}
	clusters, err := cache.New(w.mgr.GetConfig(), opts)
	if err != nil {
		return fmt.Errorf("creating the PerconaPGCluster cache: %w", err)
	}
	if err := w.mgr.Add(clusters); err != nil {
		return err
	}
	src := source.Kind(clusters, &pgv2.PerconaPGCluster{},
		handler.TypedEnqueueRequestForOwner[*pgv2.PerconaPGCluster](w.mgr.GetScheme(), w.mgr.GetRESTMapper(), &v1alpha1.DittoServer{}, handler.OnlyControllerOwner()),
		perconaClusterChanged())
	if err := w.ctrl.Watch(src); err != nil {
		return fmt.Errorf("watching PerconaPGClusters: %w", err)
	}
	w.started = true
	ctrl.Log.WithName("percona").Info("watching PerconaPGClusters")
	return nil
}

// perconaClusterChanged passes the changes the reconciler acts on: the spec (generation), the
// state, owner references, labels, annotations and deletion. Percona rewrites other status
// fields often.
func perconaClusterChanged() predicate.TypedPredicate[*pgv2.PerconaPGCluster] {
	return predicate.TypedFuncs[*pgv2.PerconaPGCluster]{
		UpdateFunc: func(e event.TypedUpdateEvent[*pgv2.PerconaPGCluster]) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.Generation != n.Generation || o.Status.State != n.Status.State ||
				!o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
				len(o.OwnerReferences) != len(n.OwnerReferences) ||
				o.Annotations[specs.AnnotationSpecHash] != n.Annotations[specs.AnnotationSpecHash]
		},
	}
}

// perconaServers lists the servers with Percona enabled (or a cluster recorded in status).
func (r *Reconciler) perconaServers(ctx context.Context) []reconcile.Request {
	list := &v1alpha1.DittoServerList{}
	if err := r.Client.List(ctx, list); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		ds := &list.Items[i]
		if ds.Spec.PerconaEnabled() || ds.Status.PerconaClusterName != "" {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}})
		}
	}
	return reqs
}
