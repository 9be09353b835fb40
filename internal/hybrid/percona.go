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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// RBAC of the Percona integration: the clusters we own. The metadata of the one CRD whose
// appearance starts the cluster watch is read under the cluster-scoped role (main.go).
// +kubebuilder:rbac:groups=pgv2.percona.com,resources=perconapgclusters,verbs=get;list;watch;create;update;patch;delete

// perconaCRDRetry re-checks a Percona CRD that exists but is not served yet: discovery lags
// the CRD object by a second or two, and no further CRD event may come. (A missing CRD is not
// polled: the CRD watch brings the server back.)
const perconaCRDRetry = time.Second

// perconaOutcome is what the database step decided for the rest of the reconcile.
type perconaOutcome struct {
	// gate holds the StatefulSet back while the database is not ready.
	gate bool
	// secret is the Percona user Secret the pod reads (set when not gated).
	secret string
	// hashInput are the Secret's keys, so a password rotation rolls the pod.
	hashInput []specs.HashPart
	// condition is DatabaseReady.
	condition finding
	// requeue is set only where no watch brings the server back.
	requeue time.Duration
}

// reconcileDatabase provisions the PerconaPGCluster of a server with spec.percona.enabled and
// decides whether the server may run on it; a server without Percona that had a cluster
// releases it. The later steps still run while the database is not ready (the status shows the
// config and endpoints); the config step holds the StatefulSet back.
func (r *Reconciler) reconcileDatabase(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if !s.ds.Spec.PerconaEnabled() {
		return ctrl.Result{}, proceed, r.releasePercona(ctx, s)
	}
	db, err := r.reconcilePercona(ctx, s.ds, s.findings)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.db = db
	s.status.database = &db.condition
	s.status.perconaCluster = specs.PerconaClusterName(s.ds)
	return ctrl.Result{RequeueAfter: db.requeue}, proceed, nil
}

// reconcilePercona provisions the cluster and decides whether the server may run on it: only
// once the cluster reports state "ready" and its user Secret exists. Until then the StatefulSet
// is not created; an existing one is left as it is (never scaled down: Percona reports
// "initializing" during its own restarts, which must not turn into a DittoFS outage).
func (r *Reconciler) reconcilePercona(ctx context.Context, ds *v1alpha1.DittoServer, findings validation.Findings) (perconaOutcome, error) {
	note := ""
	if findings.PostgresSecretIgnored {
		note = "; " + validation.PostgresSecretIgnoredMessage
	}
	if findings.PerconaCRDMissing {
		out := perconaOutcome{gate: true, condition: finding{reason: specs.ReasonPerconaCRDMissing, message: validation.PerconaCRDMissingMessage + note}}
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
	cluster, err := r.ensurePerconaCluster(ctx, ds)
	if problem, ok := specs.AsProblem(err); ok {
		return perconaOutcome{gate: true, condition: finding{reason: problem.Reason, message: problem.Message + note}}, nil
	}
	if err != nil {
		return perconaOutcome{}, err
	}
	var secret, ca *corev1.Secret
	if cluster.Status.State == pgv2.AppStateReady {
		if secret, err = r.optionalSecret(ctx, ds.Namespace, specs.PerconaUserSecretName(ds)); err != nil {
			return perconaOutcome{}, err
		}
		if specs.PerconaVerifiesCA(ds) {
			if ca, err = r.optionalSecret(ctx, ds.Namespace, specs.PerconaCASecretName(ds)); err != nil {
				return perconaOutcome{}, err
			}
		}
	}
	return perconaReadiness(ds, string(cluster.Status.State), secret, ca, r.statefulSetExists(ctx, ds), note), nil
}

// optionalSecret reads a Secret that may not exist yet (nil then).
func (r *Reconciler) optionalSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	return secret, nil
}

// perconaReadiness decides from the cluster's state, its user Secret and, with sslMode
// verify-full, its certificate Secret (nil: not there) whether the server may run on the
// database; stsExists words the wait.
func perconaReadiness(ds *v1alpha1.DittoServer, state string, secret, ca *corev1.Secret, stsExists bool, note string) perconaOutcome {
	name, secretName := specs.PerconaClusterName(ds), specs.PerconaUserSecretName(ds)
	held := "the DittoFS StatefulSet is created once it is"
	if stsExists {
		held = "the existing StatefulSet is left as it is until it is"
	}
	gated := func(reason, format string, args ...any) perconaOutcome {
		return perconaOutcome{gate: true, condition: finding{reason: reason, message: fmt.Sprintf(format, args...) + note}}
	}
	if state != specs.PerconaStateReady {
		if state == "" {
			state = "not reporting a state yet"
		} else {
			state = fmt.Sprintf("in state %q", state)
		}
		return gated(specs.ReasonPerconaNotReady, "PerconaPGCluster %s is %s; %s ready (kubectl get perconapgcluster %s -n %s)", name, state, held, name, ds.Namespace)
	}
	if secret == nil {
		return gated(specs.ReasonPerconaSecretMissing, "PerconaPGCluster %s is ready but its user Secret %s does not exist yet (the Percona operator creates it); %s there",
			name, secretName, held)
	}
	out := perconaOutcome{secret: secretName}
	var missing []string
	for _, e := range specs.PerconaEnvKeys {
		value, ok := secret.Data[e.Key]
		if !ok || len(value) == 0 {
			missing = append(missing, e.Key)
		}
		out.hashInput = append(out.hashInput, specs.HashPart{Name: secretName, Key: e.Key, Value: value})
	}
	if len(missing) > 0 {
		return gated(specs.ReasonPerconaSecretMissing, "Secret %s of PerconaPGCluster %s has no %s yet; %s complete", secretName, name, strings.Join(missing, ", "), held)
	}
	mode := ds.Spec.PerconaSSLMode()
	if specs.PerconaVerifiesCA(ds) {
		caName := specs.PerconaCASecretName(ds)
		if ca == nil || len(ca.Data[specs.PerconaCAKey]) == 0 {
			return gated(specs.ReasonPerconaSecretMissing,
				"PerconaPGCluster %s is ready but its certificate Secret %s has no %s yet (the Percona operator makes it; with spec.percona.sslMode: require DittoFS connects without checking the certificate); %s there",
				name, caName, specs.PerconaCAKey, held)
		}
		// DittoFS reads the CA when it starts: a new CA rolls the pod.
		out.hashInput = append(out.hashInput, specs.HashPart{Name: caName, Key: specs.PerconaCAKey, Value: ca.Data[specs.PerconaCAKey]})
	}
	out.condition = finding{ok: true, reason: specs.ReasonPerconaReady, message: fmt.Sprintf(
		"PerconaPGCluster %s is ready; DittoFS connects as %s to database %s with sslmode=%s (Secret %s)%s",
		name, secret.Data["user"], secret.Data["dbname"], mode, secretName, note)}
	return out
}

// ensurePerconaCluster server-side-applies the desired cluster when our desired content
// changed (recorded in specs.AnnotationSpecHash) or the cluster lacks our owner reference (e.g. an
// orphaned cluster adopted by a re-created server). Only the fields we set are owned; other
// fields a user edits are left alone. crVersion, postgresVersion and the images are set at
// creation and then kept as they are in the cluster (a Percona upgrade changes them).
func (r *Reconciler) ensurePerconaCluster(ctx context.Context, ds *v1alpha1.DittoServer) (*pgv2.PerconaPGCluster, error) {
	key := types.NamespacedName{Namespace: ds.Namespace, Name: specs.PerconaClusterName(ds)}
	live := &pgv2.PerconaPGCluster{}
	// The API reader, not the (label-scoped) cluster cache: a cluster of that name that is not
	// ours must be seen, and a stale copy would re-apply after every write.
	err := r.APIReader.Get(ctx, key, live)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading PerconaPGCluster %s: %w", key, err)
	}
	found := err == nil
	if found {
		if owner := metav1.GetControllerOf(live); owner != nil && owner.UID != ds.UID {
			return nil, specs.Problemf(specs.ReasonPerconaOwnedElsewhere,
				"PerconaPGCluster %s already exists and is controlled by %s %s; the operator does not take it over. Rename the DittoServer or remove that owner reference",
				key.Name, owner.Kind, owner.Name)
		}
	}

	desired := specs.DesiredPerconaCluster(ds, specs.PerconaImagesFromEnv())
	specHash, err := specs.ObjectHash(struct {
		Labels map[string]string
		Spec   pgv2.PerconaPGClusterSpec
	}{desired.Labels, desired.Spec})
	if err != nil {
		return nil, err
	}
	if found {
		specs.KeepCreationFields(desired, live)
	}
	if found && live.Annotations[specs.AnnotationSpecHash] == specHash && metav1.IsControlledBy(live, ds) {
		drifted, err := perconaDrifted(desired, live)
		if err != nil || !drifted {
			return live, err
		}
		r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventDriftReverted,
			"Restored PerconaPGCluster %s: fields the operator sets were changed outside it (change spec.percona instead)", key.Name)
	}
	desired.Annotations = map[string]string{specs.AnnotationSpecHash: specHash}
	if err := controllerutil.SetControllerReference(ds, desired, r.Scheme); err != nil {
		return nil, err
	}
	u, err := specs.PerconaApplyObject(desired)
	if err != nil {
		return nil, err
	}
	applied := &pgv2.PerconaPGCluster{}
	if err := r.applyUnstructured(ctx, u, applied); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return nil, specs.Problemf(specs.ReasonPerconaApplyFailed,
				"the Percona operator's CRD rejected PerconaPGCluster %s: %v; check that Percona v%s is installed and fix spec.percona", key.Name, err, specs.PerconaCRVersion)
		}
		return nil, err
	}
	if !found {
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventPerconaCreated, "Created PerconaPGCluster %s (PostgreSQL %d, %d instance(s)); the server starts once it is ready",
			key.Name, desired.Spec.PostgresVersion, *desired.Spec.InstanceSets[0].Replicas)
	}
	return applied, nil
}

// perconaDrifted reports whether a field the operator sets on the cluster (its labels and spec,
// as applied) was changed since; fields of other owners and their list entries do not count.
func perconaDrifted(desired, live *pgv2.PerconaPGCluster) (bool, error) {
	want, err := specs.PerconaApplyObject(desired)
	if err != nil {
		return false, err
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	if err != nil {
		return false, err
	}
	return !specs.FieldsMatch(want.Object["spec"], have["spec"], true) ||
		!specs.FieldsMatch(want.GetLabels(), live.GetLabels(), true), nil
}

// releasePercona runs for a server without spec.percona.enabled that had a cluster: the cluster
// is orphaned (never deleted: deleteWithServer only applies while Percona is enabled), so a
// later deletion of the server cannot garbage-collect a database it no longer uses.
func (r *Reconciler) releasePercona(ctx context.Context, s *scope) error {
	if s.ds.Status.PerconaClusterName == "" {
		return nil
	}
	if _, err := r.orphanPerconaCluster(ctx, s.ds, "spec.percona.enabled is false"); err != nil {
		return err
	}
	s.status.perconaCluster = ""
	return nil
}

// perconaClusterMeta reads the metadata of the server's cluster; nil when there is none (or the
// Percona CRD is not installed).
func (r *Reconciler) perconaClusterMeta(ctx context.Context, ds *v1alpha1.DittoServer) (*metav1.PartialObjectMetadata, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(specs.PerconaGVK)
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: specs.PerconaClusterName(ds)}, m)
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading PerconaPGCluster %s/%s: %w", ds.Namespace, specs.PerconaClusterName(ds), err)
	}
	return m, nil
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
		err = r.disown(ctx, m, ds)
		if err == nil {
			r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventPerconaOrphaned,
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
	return false, fmt.Errorf("removing the owner reference from PerconaPGCluster %s/%s: %w", ds.Namespace, specs.PerconaClusterName(ds), err)
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
