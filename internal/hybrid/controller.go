package hybrid

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// AnnotationSpecHash on the StatefulSet records the desired spec the operator last applied, so
// an unchanged StatefulSet costs no write.
const AnnotationSpecHash = "dittofs.dittofs.com/spec-hash"

// EnvRelatedImage overrides the default DittoFS image (OLM's related-images convention).
const EnvRelatedImage = "RELATED_IMAGE_DITTOFS"

// RBAC of both reconcilers. Secrets: the Helm reconciler stores releases in Secrets (create,
// update, delete); the Go controller creates the generated JWT/admin Secrets and the
// PostgreSQL env Secret, reads the user's referenced Secrets and watches their metadata.
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dittofs.dittofs.com,resources=dittoservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconciler is the Go side of the hybrid: Secrets, StatefulSet, status and finalizer.
type Reconciler struct {
	Client    client.Client
	APIReader client.Reader
	// Secrets reads the user's referenced Secrets (copies kept per resourceVersion).
	Secrets  *SecretReader
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	Renderer *Renderer
	// Validator is the guard: the same checks as the validating webhook.
	Validator *Validator
	// CleanupTimeout bounds the wait for a PerconaPGCluster deleted with its server; 0 means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration

	perconaWatch *perconaWatch
	// lastStatus is the last status write per server UID (appliedStatus).
	lastStatus sync.Map
	// cp applies the spec through the DittoFS REST API (nil: disabled).
	cp *controlPlane
}

// invalidSpecRecheck re-runs the guard for an invalid spec that no watch may fix (e.g. the
// Percona CRD being installed later). StorageClass and Secret changes trigger a reconcile anyway.
const invalidSpecRecheck = 2 * time.Minute

// DefaultImage is the DittoFS image for servers without spec.image.
func DefaultImage() string {
	if img := os.Getenv(EnvRelatedImage); img != "" {
		return img
	}
	return v1alpha1.DefaultImage
}

// Reconcile converges one DittoServer. Status is computed from what was observed and written
// once, at the end, only when it changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &v1alpha1.DittoServer{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		r.lastStatus.Delete(ds.UID)
		return r.reconcileDelete(ctx, ds)
	}
	if !controllerutil.ContainsFinalizer(ds, Finalizer) {
		// Add the Helm reconciler's finalizer in the same write: both reconcilers start on the
		// same create event and would otherwise race two Updates (one of them conflicting).
		controllerutil.AddFinalizer(ds, Finalizer)
		controllerutil.AddFinalizer(ds, HelmUninstallFinalizer)
		if err := r.Client.Update(ctx, ds); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	st := newStatusBuilder(ds)
	result, err := r.reconcileServer(ctx, ds, st)
	if err != nil {
		st.failure(ReasonReconciling, err.Error())
	}
	if werr := r.writeStatus(ctx, ds, st); werr != nil && err == nil {
		err = werr
	}
	return result, err
}

// reconcileServer runs the phases in order; each returns early when a later one cannot run.
func (r *Reconciler) reconcileServer(ctx context.Context, ds *v1alpha1.DittoServer, st *statusBuilder) (ctrl.Result, error) {
	logger := log.FromContext(ctx)

	findings, err := r.Validator.Validate(ctx, ds)
	if err != nil {
		return ctrl.Result{}, err
	}
	st.warnings = append(st.warnings, findings.Warnings...)
	if errs := findings.WithoutPerconaCRD(); len(errs) > 0 {
		// Invalid but admitted (no webhook, or the cluster changed since): report, do not roll out.
		if findings.PerconaCRDMissing {
			errs = findings.Errors
			st.databaseNotReady(ReasonPerconaCRDMissing, PerconaCRDMissingMessage)
		}
		st.configFailed(ReasonInvalidSpec, strings.Join(errs, "; "))
		return ctrl.Result{RequeueAfter: invalidSpecRecheck}, r.observeStatefulSet(ctx, ds, st)
	}

	// The database comes first: a missing Percona CRD or a cluster that is not ready holds the
	// StatefulSet back, while the rest of the status (config, endpoints) is still computed.
	var db perconaOutcome
	if ds.Spec.PerconaEnabled() {
		if db, err = r.reconcilePercona(ctx, ds, findings, st); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.releasePercona(ctx, ds, st); err != nil {
		return ctrl.Result{}, err
	}
	gated := ctrl.Result{RequeueAfter: db.requeue}

	jwt, admin, err := r.ensureGeneratedSecrets(ctx, ds)
	if err != nil {
		return ctrl.Result{}, err
	}
	secrets, err := r.resolveSecrets(ctx, ds, jwt, admin)
	var problem *SecretProblem
	if errors.As(err, &problem) {
		// Watch-driven: the Secret watch brings the server back once the Secret is fixed.
		st.configFailed(problem.Reason, problem.Message)
		return gated, r.observeStatefulSet(ctx, ds, st)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	st.warnings = append(st.warnings, secrets.warnings...)
	secrets.hashInput = append(secrets.hashInput, db.hashInput...)

	postgresSecret := ""
	if secrets.postgres != nil {
		postgresSecret = PostgresEnvSecretName(ds)
		if err := r.ensurePostgresEnvSecret(ctx, ds, secrets.postgres); err != nil {
			return ctrl.Result{}, err
		}
		st.databaseReady(ReasonPostgresSecret, fmt.Sprintf("PostgreSQL settings from Secret %s key %q are in Secret %s",
			ds.Spec.Database.PostgresSecretRef.Name, ds.Spec.Database.PostgresSecretRef.Key, postgresSecret))
	}

	rendered, err := r.Renderer.Render(ds)
	if err != nil {
		st.configFailed(ReasonRenderFailed, err.Error())
		return gated, r.observeStatefulSet(ctx, ds, st)
	}
	desiredConfig, err := rendered.ConfigYAML()
	if err != nil {
		st.configFailed(ReasonRenderFailed, err.Error())
		return gated, r.observeStatefulSet(ctx, ds, st)
	}

	cm := &corev1.ConfigMap{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ConfigMapName(ds)}, cm)
	switch {
	case apierrors.IsNotFound(err):
		st.configPending(fmt.Sprintf("waiting for the Helm reconciler to create ConfigMap %s", ConfigMapName(ds)))
		// A new server: Helm's first status write (Initialized) and the ConfigMap's creation
		// bring us back within a second; a status written now would be replaced at once.
		st.deferWrite = meta.FindStatusCondition(ds.Status.Conditions, ConditionInitialized) == nil
		return gated, r.observeStatefulSet(ctx, ds, st)
	case err != nil:
		return ctrl.Result{}, err
	case cm.Data[ConfigFileName] != desiredConfig:
		// The Helm upgrade has not landed yet; its ConfigMap event brings us back. Until then the
		// pod keeps the config it has: never roll out a hash of a config the pod cannot see.
		st.configPending(fmt.Sprintf("ConfigMap %s does not match the spec yet (Helm upgrade pending)", ConfigMapName(ds)))
		return gated, r.observeStatefulSet(ctx, ds, st)
	}

	if db.gate {
		// The configuration is fine; the pod waits for the database. status.configHash keeps
		// the hash the pod runs with (the Percona Secret is not part of it yet).
		st.configReady(ds.Status.ConfigHash)
		return gated, r.observeStatefulSet(ctx, ds, st)
	}
	hash := ConfigHash(desiredConfig, secrets.hashInput)
	st.configReady(hash)

	image := ds.Spec.Image
	if image == "" {
		image = DefaultImage()
	}
	storeUpdated, err := r.remoteStoreUpdated(ctx, ds)
	if err != nil {
		return ctrl.Result{}, err
	}
	desired := DesiredStatefulSet(ds, StatefulSetInputs{
		Image: image, ConfigHash: hash, JWTSecret: secrets.JWT, AdminPassword: secrets.Admin,
		PostgresSecret: postgresSecret, PerconaSecret: db.secret, RemoteStoreUpdated: storeUpdated,
	})
	sts, err := r.applyStatefulSet(ctx, ds, desired)
	var blocked *volumeExpansionBlocked
	var replacing *statefulSetReplacing
	result := ctrl.Result{}
	switch {
	case errors.As(err, &blocked):
		// Everything else is applied; the server runs on its current volumes. A warning in
		// Ready (the size cannot be set back: volumes never shrink) and a retry, in case the
		// StorageClass is changed to allow expansion.
		st.warnings = append(st.warnings, blocked.message)
		if c := meta.FindStatusCondition(ds.Status.Conditions, ConditionReady); c == nil || !strings.Contains(c.Message, blocked.message) {
			r.Recorder.Event(ds, corev1.EventTypeWarning, ReasonVolumeExpansionBlocked, blocked.message)
		}
		result.RequeueAfter = invalidSpecRecheck
	case errors.As(err, &replacing):
		st.observeStatefulSet(replacing.existing)
		st.replacing = replacing.message
		return ctrl.Result{RequeueAfter: time.Second}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	logger.V(1).Info("statefulset converged", "hash", hash)
	st.observeStatefulSet(sts)
	cpResult, err := r.reconcileControlPlane(ctx, ds, sts, secrets.Admin, st)
	if result.RequeueAfter > 0 && (cpResult.RequeueAfter == 0 || result.RequeueAfter < cpResult.RequeueAfter) {
		cpResult.RequeueAfter = result.RequeueAfter
	}
	return cpResult, err
}

// observeStatefulSet reads the current StatefulSet (if any) into the status.
func (r *Reconciler) observeStatefulSet(ctx context.Context, ds *v1alpha1.DittoServer, st *statusBuilder) error {
	sts := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}, sts)
	if apierrors.IsNotFound(err) {
		st.observeStatefulSet(nil)
		return nil
	}
	if err != nil {
		return err
	}
	st.observeStatefulSet(sts)
	return nil
}

// applyStatefulSet server-side-applies the StatefulSet when the desired spec differs from what
// was last applied (or the object drifted in the fields users commonly touch).
func (r *Reconciler) applyStatefulSet(ctx context.Context, ds *v1alpha1.DittoServer, desired *appsv1.StatefulSet) (*appsv1.StatefulSet, error) {
	existing := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	found := err == nil
	if found && !existing.DeletionTimestamp.IsZero() {
		// Deleted without its pods for new volume sizes; created again once it is gone.
		return nil, &statefulSetReplacing{existing: existing, message: fmt.Sprintf("waiting for StatefulSet %s to be re-created for the new volume sizes", existing.Name)}
	}
	// Larger volumes: resize the PVCs and re-create the StatefulSet (volumes.go). When the
	// StorageClass cannot grow them, everything else is still applied, on the current volumes.
	var blocked error
	if found {
		if grown, onlyGrowth := grownClaims(existing, desired); onlyGrowth && len(grown) > 0 {
			err := r.expandVolumes(ctx, ds, existing, grown)
			var b *volumeExpansionBlocked
			if !errors.As(err, &b) {
				return nil, err
			}
			blocked = err
			desired.Spec.VolumeClaimTemplates = existing.Spec.VolumeClaimTemplates
		}
	}

	specHash, err := objectHash(desired.Spec)
	if err != nil {
		return nil, err
	}
	desired.Annotations = map[string]string{AnnotationSpecHash: specHash}
	if err := controllerutil.SetControllerReference(ds, desired, r.Scheme); err != nil {
		return nil, err
	}
	newHash := desired.Spec.Template.Annotations[AnnotationConfigHash]
	if found && existing.Annotations[AnnotationSpecHash] == specHash &&
		existing.Spec.Template.Annotations[AnnotationConfigHash] == newHash &&
		existing.Spec.Template.Annotations[AnnotationRemoteStoreUpdated] == desired.Spec.Template.Annotations[AnnotationRemoteStoreUpdated] &&
		existing.Spec.Replicas != nil && *existing.Spec.Replicas == *desired.Spec.Replicas {
		return existing, blocked
	}

	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return nil, err
	}
	delete(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj, "spec", "template", "metadata", "creationTimestamp")
	if claims, ok, _ := unstructured.NestedSlice(obj, "spec", "volumeClaimTemplates"); ok {
		for _, c := range claims {
			if m, ok := c.(map[string]any); ok {
				delete(m, "status")
				unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
			}
		}
		_ = unstructured.SetNestedSlice(obj, claims, "spec", "volumeClaimTemplates")
	}
	u := &unstructured.Unstructured{Object: obj}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if found && apierrors.IsInvalid(err) {
			// StatefulSet fields such as volumeClaimTemplates are immutable (sizes grow through
			// volumes.go; a storage class or a volume set cannot change).
			return nil, fmt.Errorf("updating StatefulSet %s/%s: %w (the storage class and the set of volumes cannot change on an existing server)", ds.Namespace, ds.Name, err)
		}
		return nil, fmt.Errorf("applying StatefulSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	applied := &appsv1.StatefulSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, applied); err != nil {
		return nil, err
	}
	switch oldHash := existing.Spec.Template.Annotations[AnnotationConfigHash]; {
	case !found:
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventCreated, "Created StatefulSet %s", ds.Name)
	case oldHash != newHash:
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventConfigChanged, "Configuration or referenced Secrets changed (hash %s -> %s)", short(oldHash), short(newHash))
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventRollingRestart, "Rolling the DittoFS pod to pick up the new configuration")
	case existing.Spec.Template.Annotations[AnnotationRemoteStoreUpdated] != desired.Spec.Template.Annotations[AnnotationRemoteStoreUpdated]:
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventRollingRestart, "Rolling the DittoFS pod to load remote block store %s as updated at %s (DittoFS uses a changed store only after a restart)",
			S3StoreName, desired.Spec.Template.Annotations[AnnotationRemoteStoreUpdated])
	}
	return applied, blocked
}

// remoteStoreUpdated reads AnnotationRemoteStoreUpdated from the operator Secret (cached;
// "" when there is none).
func (r *Reconciler) remoteStoreUpdated(ctx context.Context, ds *v1alpha1.DittoServer) (string, error) {
	if r.cp == nil {
		return "", nil
	}
	s := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: OperatorSecretName(ds)}, s)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return s.Annotations[AnnotationRemoteStoreUpdated], nil
}

// ensurePostgresEnvSecret writes the discrete PostgreSQL settings parsed from the user's URI
// into an operator-owned Secret, which the pod env reads (never plaintext in the pod spec).
func (r *Reconciler) ensurePostgresEnvSecret(ctx context.Context, ds *v1alpha1.DittoServer, settings map[string]string) error {
	name := PostgresEnvSecretName(ds)
	existing := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, existing)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && secretDataEquals(existing.Data, settings) {
		return nil
	}
	data := map[string]any{}
	for k, v := range settings {
		data[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{
			"name": name, "namespace": ds.Namespace,
			"labels": toAnyMap(CommonLabels(ds, "db-credentials")),
		},
		"type":       string(corev1.SecretTypeOpaque),
		"stringData": data,
	}}
	if err := controllerutil.SetControllerReference(ds, u, r.Scheme); err != nil {
		return err
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying Secret %s/%s: %w", ds.Namespace, name, err)
	}
	return nil
}

func secretDataEquals(have map[string][]byte, want map[string]string) bool {
	if len(have) != len(want) {
		return false
	}
	for k, v := range want {
		if string(have[k]) != v {
			return false
		}
	}
	return true
}

func toAnyMap(in map[string]string) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func objectHash(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:32], nil
}

func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	if h == "" {
		return "none"
	}
	return h
}
