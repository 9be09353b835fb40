package hybrid

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// RBAC of the Percona integration: the clusters we own, and the metadata of the one CRD whose
// appearance starts the cluster watch (list/watch are restricted to it by a name selector).
// +kubebuilder:rbac:groups=pgv2.percona.com,resources=perconapgclusters,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch,resourceNames=perconapgclusters.pgv2.percona.com

// perconaCRDRetry re-checks a Percona CRD that exists but is not served yet: discovery lags
// the CRD object by a second or two, and no further CRD event may come. (A missing CRD is not
// polled: the CRD watch brings the server back.)
const perconaCRDRetry = time.Second

// dbProblem is a reason the database cannot be used that only the user can fix.
type dbProblem struct{ Reason, Message string }

// perconaOutcome is what the Percona step decided for the rest of the reconcile.
type perconaOutcome struct {
	// gate holds the StatefulSet back while the database is not ready.
	gate bool
	// secret is the Percona user Secret the pod reads (set when not gated).
	secret string
	// hashInput are the Secret's keys, so a password rotation rolls the pod.
	hashInput []hashPart
	// requeue is set only where no watch brings the server back.
	requeue time.Duration
}

// reconcilePercona provisions the PerconaPGCluster of a server with spec.percona.enabled and
// decides whether the server may run on it: only once the cluster reports state "ready" and
// its user Secret exists. Until then the StatefulSet is not created; an existing one is left
// as it is (never scaled down: Percona reports "initializing" during its own restarts, which
// must not turn into a DittoFS outage).
func (r *Reconciler) reconcilePercona(ctx context.Context, ds *v1alpha1.DittoServer, findings Findings, st *statusBuilder) (perconaOutcome, error) {
	name := PerconaClusterName(ds)
	st.perconaCluster = name
	note := ""
	if findings.PostgresSecretIgnored {
		note = "; " + PostgresSecretIgnoredMessage
	}
	if findings.PerconaCRDMissing {
		st.databaseNotReady(ReasonPerconaCRDMissing, PerconaCRDMissingMessage+note)
		out := perconaOutcome{gate: true}
		// The CRD watch brings the server back when the CRD appears. Only a CRD that exists
		// but is not served yet needs a timed retry.
		if r.perconaWatch != nil && r.perconaWatch.crdPresent(ctx) {
			out.requeue = perconaCRDRetry
		}
		return out, nil
	}
	if r.perconaWatch != nil {
		if err := r.perconaWatch.ensure(); err != nil {
			return perconaOutcome{}, err
		}
	}

	cluster, problem, err := r.ensurePerconaCluster(ctx, ds)
	if err != nil {
		return perconaOutcome{}, err
	}
	if problem != nil {
		st.databaseNotReady(problem.Reason, problem.Message+note)
		return perconaOutcome{gate: true}, nil
	}

	held := "the DittoFS StatefulSet is created once it is"
	if r.statefulSetExists(ctx, ds) {
		held = "the existing StatefulSet is left as it is until it is"
	}
	if state := string(cluster.Status.State); state != PerconaStateReady {
		if state == "" {
			state = "not reporting a state yet"
		} else {
			state = fmt.Sprintf("in state %q", state)
		}
		st.databaseNotReady(ReasonPerconaNotReady, fmt.Sprintf("PerconaPGCluster %s is %s; %s ready (kubectl get perconapgcluster %s -n %s)%s",
			name, state, held, name, ds.Namespace, note))
		return perconaOutcome{gate: true}, nil
	}

	secretName := PerconaUserSecretName(ds)
	secret, err := r.readSecret(ctx, ds, secretName)
	if apierrors.IsNotFound(err) {
		st.databaseNotReady(ReasonPerconaSecretMissing, fmt.Sprintf("PerconaPGCluster %s is ready but its user Secret %s does not exist yet (the Percona operator creates it); %s there%s",
			name, secretName, held, note))
		return perconaOutcome{gate: true}, nil
	}
	if err != nil {
		return perconaOutcome{}, fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, secretName, err)
	}
	out := perconaOutcome{secret: secretName}
	var missing []string
	for _, e := range PerconaEnvKeys {
		value, ok := secret.Data[e.Key]
		if !ok || len(value) == 0 {
			missing = append(missing, e.Key)
		}
		out.hashInput = append(out.hashInput, hashPart{secretName, e.Key, value})
	}
	if len(missing) > 0 {
		st.databaseNotReady(ReasonPerconaSecretMissing, fmt.Sprintf("Secret %s of PerconaPGCluster %s has no %s yet; %s complete%s",
			secretName, name, strings.Join(missing, ", "), held, note))
		return perconaOutcome{gate: true}, nil
	}
	st.databaseReady(ReasonPerconaReady, fmt.Sprintf("PerconaPGCluster %s is ready; DittoFS connects as %s to database %s with sslmode=%s (Secret %s)%s",
		name, secret.Data["user"], secret.Data["dbname"], PerconaSSLMode, secretName, note))
	return out, nil
}

// ensurePerconaCluster server-side-applies the desired cluster when our desired content
// changed (recorded in AnnotationSpecHash) or the cluster lacks our owner reference (e.g. an
// orphaned cluster adopted by a re-created server). Only the fields we set are owned; other
// fields a user edits are left alone. crVersion, postgresVersion and the images are set at
// creation and then kept as they are in the cluster (a Percona upgrade changes them).
func (r *Reconciler) ensurePerconaCluster(ctx context.Context, ds *v1alpha1.DittoServer) (*pgv2.PerconaPGCluster, *dbProblem, error) {
	key := types.NamespacedName{Namespace: ds.Namespace, Name: PerconaClusterName(ds)}
	live := &pgv2.PerconaPGCluster{}
	// The API reader, not the (label-scoped) cluster cache: a cluster of that name that is not
	// ours must be seen, and a stale copy would re-apply after every write.
	err := r.APIReader.Get(ctx, key, live)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("reading PerconaPGCluster %s: %w", key, err)
	}
	found := err == nil
	if found {
		if owner := metav1.GetControllerOf(live); owner != nil && owner.UID != ds.UID {
			return nil, &dbProblem{Reason: ReasonPerconaOwnedElsewhere, Message: fmt.Sprintf(
				"PerconaPGCluster %s already exists and is controlled by %s %s; the operator does not take it over. Rename the DittoServer or remove that owner reference",
				key.Name, owner.Kind, owner.Name)}, nil
		}
	}

	desired := DesiredPerconaCluster(ds, PerconaImagesFromEnv())
	specHash, err := objectHash(struct {
		Labels map[string]string
		Spec   pgv2.PerconaPGClusterSpec
	}{desired.Labels, desired.Spec})
	if err != nil {
		return nil, nil, err
	}
	if found && live.Annotations[AnnotationSpecHash] == specHash && metav1.IsControlledBy(live, ds) {
		return live, nil, nil
	}
	if found {
		keepCreationFields(desired, live)
	}
	desired.Annotations = map[string]string{AnnotationSpecHash: specHash}
	if err := controllerutil.SetControllerReference(ds, desired, r.Scheme); err != nil {
		return nil, nil, err
	}
	u, err := perconaApplyObject(desired)
	if err != nil {
		return nil, nil, err
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return nil, &dbProblem{Reason: ReasonPerconaApplyFailed, Message: fmt.Sprintf(
				"the Percona operator's CRD rejected PerconaPGCluster %s: %v; check that Percona v%s is installed and fix spec.percona", key.Name, err, PerconaCRVersion)}, nil
		}
		return nil, nil, fmt.Errorf("applying PerconaPGCluster %s: %w", key, err)
	}
	applied := &pgv2.PerconaPGCluster{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, applied); err != nil {
		return nil, nil, err
	}
	if !found {
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventPerconaCreated, "Created PerconaPGCluster %s (PostgreSQL %d, %d instance(s)); the server starts once it is ready",
			key.Name, desired.Spec.PostgresVersion, *desired.Spec.InstanceSets[0].Replicas)
	}
	return applied, nil, nil
}

// keepCreationFields copies the fields that are set at creation only from the live cluster.
func keepCreationFields(desired, live *pgv2.PerconaPGCluster) {
	if live.Spec.CRVersion != "" {
		desired.Spec.CRVersion = live.Spec.CRVersion
	}
	if live.Spec.PostgresVersion != 0 {
		desired.Spec.PostgresVersion = live.Spec.PostgresVersion
	}
	if live.Spec.Image != "" {
		desired.Spec.Image = live.Spec.Image
	}
	if desired.Spec.Backups.PGBackRest.Image != "" && live.Spec.Backups.PGBackRest.Image != "" {
		desired.Spec.Backups.PGBackRest.Image = live.Spec.Backups.PGBackRest.Image
	}
}

// releasePercona runs for a server without spec.percona.enabled that had a cluster: the cluster
// is orphaned (never deleted: deleteWithServer only applies while Percona is enabled), so a
// later deletion of the server cannot garbage-collect a database it no longer uses.
func (r *Reconciler) releasePercona(ctx context.Context, ds *v1alpha1.DittoServer, st *statusBuilder) error {
	if ds.Status.PerconaClusterName == "" {
		return nil
	}
	if _, err := r.orphanPerconaCluster(ctx, ds, "spec.percona.enabled is false"); err != nil {
		return err
	}
	st.perconaCluster = ""
	return nil
}

// perconaClusterMeta reads the metadata of the server's cluster; nil when there is none (or the
// Percona CRD is not installed).
func (r *Reconciler) perconaClusterMeta(ctx context.Context, ds *v1alpha1.DittoServer) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(PerconaGVK)
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: PerconaClusterName(ds)}, m)
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading PerconaPGCluster %s/%s: %w", ds.Namespace, PerconaClusterName(ds), err)
	}
	return m, nil
}

// ownedBy reports whether any owner reference of m points at ds.
func ownedBy(m metav1.Object, ds *v1alpha1.DittoServer) bool {
	for _, ref := range m.GetOwnerReferences() {
		if ref.UID == ds.UID {
			return true
		}
	}
	return false
}

// orphanPerconaCluster removes the server's owner reference from its cluster (optimistic
// lock, conflicts retried at once on a fresh read, no sleep in the worker). It reports whether
// a reference was removed; a cluster that is gone or not ours is left alone.
func (r *Reconciler) orphanPerconaCluster(ctx context.Context, ds *v1alpha1.DittoServer, why string) (bool, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var m *metav1.PartialObjectMetadata
		m, err = r.perconaClusterMeta(ctx, ds)
		if err != nil || m == nil || !ownedBy(m, ds) {
			return false, err
		}
		orig := m.DeepCopy()
		var refs []metav1.OwnerReference
		for _, ref := range m.OwnerReferences {
			if ref.UID != ds.UID {
				refs = append(refs, ref)
			}
		}
		m.OwnerReferences = refs
		err = r.Client.Patch(ctx, m, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventPerconaOrphaned,
				"Removed the owner reference from PerconaPGCluster %s (%s): the database and its volumes are kept; delete it with kubectl delete perconapgcluster %s -n %s",
				m.Name, why, m.Name, m.Namespace)
			return true, nil
		}
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if !apierrors.IsConflict(err) {
			break
		}
	}
	return false, fmt.Errorf("removing the owner reference from PerconaPGCluster %s/%s: %w", ds.Namespace, PerconaClusterName(ds), err)
}

// finalizersOf lists an object's finalizers for messages.
func finalizersOf(m metav1.Object) string {
	f := append([]string(nil), m.GetFinalizers()...)
	sort.Strings(f)
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, ", ")
}

// statefulSetExists reads the server's StatefulSet from the cache.
func (r *Reconciler) statefulSetExists(ctx context.Context, ds *v1alpha1.DittoServer) bool {
	return r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}, &appsv1.StatefulSet{}) == nil
}
