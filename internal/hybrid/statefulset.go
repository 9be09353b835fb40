package hybrid

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// reconcileStatefulSet applies the StatefulSet with the config hash on its pod template.
// Larger volumes are applied too (volumes.go); when the StorageClass cannot grow them, the rest
// is applied on the current volumes and Ready carries the warning.
func (r *Reconciler) reconcileStatefulSet(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	ds := s.ds
	storeUpdated, kerberosUpdated := "", ""
	if r.ControlPlane != nil {
		var err error
		if storeUpdated, kerberosUpdated, err = r.ControlPlane.RestartStamps(ctx, ds); err != nil {
			return ctrl.Result{}, halt, err
		}
	}
	postgresSecret := ""
	if s.secrets.postgres != nil {
		postgresSecret = specs.PostgresEnvSecretName(ds)
	}
	existing := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return ctrl.Result{}, halt, err
	}
	volumes, kept, err := r.volumes(ctx, ds, existing)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.volumes = volumes
	hash := podConfigHash(s, existing)
	s.status.config.hash = hash
	desired := specs.DesiredStatefulSet(ds, specs.StatefulSetInputs{
		Image: specs.ServerImage(ds), ConfigHash: hash, JWTSecret: s.secrets.jwt, AdminPassword: s.secrets.admin,
		PostgresSecret: postgresSecret, PerconaSecret: s.db.secret, RemoteStoreUpdated: storeUpdated,
		KerberosUpdated: kerberosUpdated, Volumes: volumes,
	})
	res, err := r.applyStatefulSet(ctx, ds, desired, kept)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.status.observeStatefulSet(res.sts)
	if r.Rollouts != nil {
		key := client.ObjectKeyFromObject(ds)
		// Done when the cache shows this operator's template rolled out (a stale copy carries the
		// previous identity).
		if res.sts.Annotations[specs.AnnotationOperator] == r.Identity && !rollingOut(res.sts, ds.Spec.EffectiveReplicas()) {
			r.Rollouts.release(key)
		}
		if res.queued != "" {
			s.status.rolloutQueued = res.queued
			return ctrl.Result{RequeueAfter: rolloutRecheck}, proceed, nil
		}
	}
	if res.replacing != "" {
		s.status.replacing = res.replacing
		return ctrl.Result{RequeueAfter: time.Second}, halt, nil
	}
	result := ctrl.Result{}
	if p := res.blocked; p != nil {
		// Everything else is applied; the server runs on its current volumes. A warning in
		// Ready (the size cannot be set back: volumes never shrink) and a retry, in case the
		// StorageClass is changed to allow expansion.
		s.status.warnings = append(s.status.warnings, p.Message)
		if c := meta.FindStatusCondition(ds.Status.Conditions, specs.ConditionReady); c == nil || !strings.Contains(c.Message, p.Message) {
			r.Recorder.Event(ds, corev1.EventTypeWarning, p.Reason, p.Message)
		}
		result.RequeueAfter = invalidSpecRecheck
	}
	return result, proceed, nil
}

// podConfigHash is the config hash for the pod template. Operators before this one also hashed
// the admin password, which DittoFS reads on first boot only (a new one is set through the API):
// a pod that runs with that older hash of the same configuration keeps it, so upgrading the
// operator restarts no server.
func podConfigHash(s *scope, existing *appsv1.StatefulSet) string {
	if existing != nil && existing.Spec.Template.Annotations[specs.AnnotationConfigHash] == s.legacyHash {
		return s.legacyHash
	}
	return s.hash
}

// volumes are the claim templates of the StatefulSet: an existing one keeps its own (they
// cannot change; volumes.go grows them); a new one gets what the spec needs, plus the volumes
// whose PersistentVolumeClaims a server of this name left (kept data is mounted again). For a
// new StatefulSet it also returns those kept PVCs, by volume (volumes.go grows the smaller ones).
func (r *Reconciler) volumes(ctx context.Context, ds *v1alpha1.DittoServer, existing *appsv1.StatefulSet) ([]string, map[string]*corev1.PersistentVolumeClaim, error) {
	if existing != nil {
		out := make([]string, 0, len(existing.Spec.VolumeClaimTemplates))
		for _, c := range existing.Spec.VolumeClaimTemplates {
			out = append(out, c.Name)
		}
		return out, nil, nil
	}
	ofServer := []client.ListOption{client.InNamespace(ds.Namespace), client.MatchingLabels{specs.LabelInstance: ds.Name, specs.LabelPartOf: specs.PartOf}}
	if r.ClaimMeta != nil {
		// Most new servers have no claims yet: the metadata cache says so without a request.
		// Bounded: a cache that cannot sync (RBAC without watch) must not hold the worker.
		claims := &metav1.PartialObjectMetadataList{}
		claims.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaimList"))
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := r.ClaimMeta.List(lctx, claims, ofServer...)
		cancel()
		if err == nil && len(claims.Items) == 0 {
			return specs.PlanVolumes(ds, nil), map[string]*corev1.PersistentVolumeClaim{}, nil
		}
	}
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, pvcs, ofServer...); err != nil {
		return nil, nil, fmt.Errorf("listing the PersistentVolumeClaims of %s: %w", ds.Name, err)
	}
	kept := map[string]*corev1.PersistentVolumeClaim{}
	names := []string{}
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		if v := pvc.Labels[specs.LabelComponent]; v != "" && pvc.Name == fmt.Sprintf("%s-%s-0", v, ds.Name) && pvc.DeletionTimestamp.IsZero() {
			kept[v] = pvc
			names = append(names, v)
		}
	}
	return specs.PlanVolumes(ds, names), kept, nil
}

// appliedStatefulSet is what applying the StatefulSet gave.
type appliedStatefulSet struct {
	// sts is the StatefulSet as the server has it now.
	sts *appsv1.StatefulSet
	// replacing says that the StatefulSet is being re-created for new claim templates (sts is
	// the one on its way out).
	replacing string
	// blocked is a larger volume the StorageClass cannot give; the rest was applied.
	blocked *specs.Problem
	// queued says that a new pod template waits for a rollout slot (nothing was applied).
	queued string
}

// applyStatefulSet server-side-applies the StatefulSet when the desired spec differs from what
// was last applied (AnnotationSpecHash), the config hash or restart annotation changed, or the
// replica count drifted.
func (r *Reconciler) applyStatefulSet(ctx context.Context, ds *v1alpha1.DittoServer, desired *appsv1.StatefulSet, kept map[string]*corev1.PersistentVolumeClaim) (appliedStatefulSet, error) {
	existing := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	if err != nil && !apierrors.IsNotFound(err) {
		return appliedStatefulSet{}, err
	}
	found := err == nil
	if found && !existing.DeletionTimestamp.IsZero() {
		// Deleted without its pods for new volume sizes; created again once it is gone.
		return appliedStatefulSet{sts: existing, replacing: fmt.Sprintf("waiting for StatefulSet %s to be re-created for the new volume sizes", existing.Name)}, nil
	}
	// Larger volumes: resize the PVCs and re-create the StatefulSet (volumes.go). When the
	// StorageClass cannot grow them, everything else is still applied, on the current volumes.
	var blocked *specs.Problem
	if found {
		if grown, onlyGrowth := specs.GrownClaims(existing, desired); onlyGrowth && len(grown) > 0 {
			replacing, problem, err := r.expandVolumes(ctx, ds, existing, grown)
			switch {
			case err != nil:
				return appliedStatefulSet{}, err
			case problem == nil:
				return appliedStatefulSet{sts: existing, replacing: replacing}, nil
			}
			blocked = problem
			desired.Spec.VolumeClaimTemplates = existing.Spec.VolumeClaimTemplates
		}
	} else if blocked, err = r.growKeptClaims(ctx, ds, desired, kept); err != nil {
		return appliedStatefulSet{}, err
	}

	specHash, err := specs.ObjectHash(desired.Spec)
	if err != nil {
		return appliedStatefulSet{}, err
	}
	desired.Annotations = map[string]string{specs.AnnotationSpecHash: specHash}
	if r.Identity != "" {
		// Not in the spec hash: a new identity alone writes nothing.
		desired.Annotations[specs.AnnotationOperator] = r.Identity
	}
	if found {
		// The comparison is kept per StatefulSet generation (bumped by every change of its
		// spec) and desired spec: most reconciles follow a status change and compare nothing.
		matched := matchedStatefulSet{uid: existing.UID, generation: existing.Generation, specHash: specHash}
		if kept, ok := r.matchedStatefulSet.Load(ds.UID); ok && kept == matched &&
			existing.Annotations[specs.AnnotationSpecHash] == specHash {
			return appliedStatefulSet{sts: existing, blocked: blocked}, nil
		}
		needed, err := statefulSetNeedsApply(existing, desired)
		if err != nil {
			return appliedStatefulSet{}, err
		}
		if !needed {
			r.matchedStatefulSet.Store(ds.UID, matched)
			return appliedStatefulSet{sts: existing, blocked: blocked}, nil
		}
		if r.Rollouts != nil {
			gated, err := gatedRollout(existing, desired, r.Identity)
			if err != nil {
				return appliedStatefulSet{}, err
			}
			if gated {
				if ok, msg := r.Rollouts.acquire(client.ObjectKeyFromObject(ds)); !ok {
					return appliedStatefulSet{sts: existing, blocked: blocked, queued: msg}, nil
				}
			}
		}
	}
	if err := r.apply(ctx, ds, desired); err != nil {
		if found && apierrors.IsInvalid(err) {
			// StatefulSet fields such as volumeClaimTemplates are immutable (sizes grow through
			// volumes.go; a storage class or a volume set cannot change).
			return appliedStatefulSet{}, fmt.Errorf("%w (the storage class and the set of volumes cannot change on an existing server)", err)
		}
		return appliedStatefulSet{}, err
	}
	r.emitStatefulSetEvents(ds, existing, desired, found)
	return appliedStatefulSet{sts: desired, blocked: blocked}, nil
}

// matchedStatefulSet is a StatefulSet, at one generation, found to match the desired spec of
// hash specHash.
type matchedStatefulSet struct {
	uid        types.UID
	generation int64
	specHash   string
}

// statefulSetNeedsApply reports whether the existing StatefulSet differs from desired in what
// the operator sets: the spec it last applied, or any field of it edited since (an image set
// with kubectl, an env var, resources, probes, volumes, the security context, replicas). Fields
// the operator does not set, and entries other owners added to its lists, are left alone.
func statefulSetNeedsApply(existing, desired *appsv1.StatefulSet) (bool, error) {
	if existing.Annotations[specs.AnnotationSpecHash] != desired.Annotations[specs.AnnotationSpecHash] {
		return true, nil
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&existing.Spec)
	if err != nil {
		return false, err
	}
	want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&desired.Spec)
	if err != nil {
		return false, err
	}
	// Claim templates cannot change in place (volumes.go grows them).
	delete(want, "volumeClaimTemplates")
	return !specs.FieldsMatch(want, have, true), nil
}

// emitStatefulSetEvents says why an existing StatefulSet was written: new config (the pod rolls),
// an updated S3 store the pod must load, or drift put back. A new server's StatefulSet has no
// event of its own: the Ready event follows it, and the status says what is in progress.
func (r *Reconciler) emitStatefulSetEvents(ds *v1alpha1.DittoServer, existing, desired *appsv1.StatefulSet, found bool) {
	if !found {
		return
	}
	oldHash := existing.Spec.Template.Annotations[specs.AnnotationConfigHash]
	newHash := desired.Spec.Template.Annotations[specs.AnnotationConfigHash]
	switch {
	case oldHash != newHash:
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventConfigChanged,
			"Configuration or referenced Secrets changed (hash %s -> %s): rolling the DittoFS pod to pick it up", short(oldHash), short(newHash))
	case existing.Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated] != desired.Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated]:
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventRollingRestart, "Rolling the DittoFS pod to load remote block store %s as updated at %s (DittoFS uses a changed store only after a restart)",
			specs.S3StoreName, desired.Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated])
	case existing.Annotations[specs.AnnotationSpecHash] == desired.Annotations[specs.AnnotationSpecHash]:
		r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventDriftReverted,
			"Restored StatefulSet %s: fields the operator sets were changed outside it (change the DittoServer instead)", ds.Name)
	}
}

// short abbreviates a hash for messages.
func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	if h == "" {
		return "none"
	}
	return h
}
