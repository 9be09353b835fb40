package hybrid

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// statusBuilder collects what one reconcile observed and turns it into the Go-owned part of
// the status. Everything is derived here, in one place.
type statusBuilder struct {
	ds *v1alpha1.DittoServer

	configOK      bool
	configReason  string
	configMessage string
	configBroken  bool // the spec or a Secret must be fixed by the user
	hash          string

	dbNeeded  bool
	dbOK      bool
	dbReason  string
	dbMessage string

	sts *appsv1.StatefulSet

	// perconaCluster is status.perconaClusterName (kept until the cluster is released).
	perconaCluster string

	failReason, failMessage string
	// deferWrite skips this reconcile's status write (a write that would be replaced at once).
	deferWrite bool
	warnings   []string

	// cp is what the control-plane step observed (attempted only once the pod is Ready).
	cp cpOutcome

	// replacing is set while the StatefulSet is re-created for new volume sizes.
	replacing string
}

func newStatusBuilder(ds *v1alpha1.DittoServer) *statusBuilder {
	return &statusBuilder{
		ds:             ds,
		configReason:   ReasonConfigPending,
		configMessage:  "configuration not rendered yet",
		hash:           ds.Status.ConfigHash,
		perconaCluster: ds.Status.PerconaClusterName,
	}
}

func (b *statusBuilder) configReady(hash string) {
	b.configOK, b.hash = true, hash
	b.configReason = ReasonConfigRendered
	b.configMessage = fmt.Sprintf("ConfigMap %s matches the spec", ConfigMapName(b.ds))
}

func (b *statusBuilder) configPending(msg string) {
	b.configOK, b.configReason, b.configMessage = false, ReasonConfigPending, msg
}

func (b *statusBuilder) configFailed(reason, msg string) {
	b.configOK, b.configBroken, b.configReason, b.configMessage = false, true, reason, msg
}

func (b *statusBuilder) databaseReady(reason, msg string) {
	b.dbNeeded, b.dbOK, b.dbReason, b.dbMessage = true, true, reason, msg
}

func (b *statusBuilder) databaseNotReady(reason, msg string) {
	b.dbNeeded, b.dbOK, b.dbReason, b.dbMessage = true, false, reason, msg
}

func (b *statusBuilder) observeStatefulSet(sts *appsv1.StatefulSet) { b.sts = sts }

func (b *statusBuilder) failure(reason, msg string) { b.failReason, b.failMessage = reason, msg }

// build returns the desired Go-owned status, starting from the current one so condition
// transition times survive.
func (b *statusBuilder) build() v1alpha1.DittoServerStatus {
	ds := b.ds
	gen := ds.Generation
	st := v1alpha1.DittoServerStatus{
		ObservedGeneration: gen,
		ConfigHash:         b.hash,
		PerconaClusterName: b.perconaCluster,
		Conditions:         goConditions(ds.Status.Conditions),
	}
	spec := ds.Spec.DeepCopy()
	d := &v1alpha1.DittoServer{Spec: *spec}
	d.Default()
	svc := fmt.Sprintf("%s-file.%s.svc", ds.Name, ds.Namespace)
	st.NFSEndpoint = fmt.Sprintf("%s:%d", svc, d.Spec.NFSServicePort())
	if d.Spec.SMBEnabled() {
		st.SMBEndpoint = fmt.Sprintf("%s:%d", svc, d.Spec.SMBPort())
	}
	st.APIEndpoint = fmt.Sprintf("%s-api.%s.svc:%d", ds.Name, ds.Namespace, d.Spec.APIPort())

	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}
	set(ConditionConfigReady, b.configOK, b.configReason, b.configMessage)
	if b.dbNeeded {
		set(ConditionDatabaseReady, b.dbOK, b.dbReason, b.dbMessage)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, ConditionDatabaseReady)
	}

	wantReplicas := d.Spec.EffectiveReplicas()
	available, progressing := false, false
	availReason, availMsg := ReasonPodsNotReady, "the StatefulSet does not exist yet"
	progReason, progMsg := ReasonRolledOut, "no rollout in flight"
	if sts := b.sts; sts != nil {
		st.Replicas = sts.Status.Replicas
		st.ReadyReplicas = sts.Status.ReadyReplicas
		st.AvailableReplicas = sts.Status.AvailableReplicas
		stsWant := int32(1)
		if sts.Spec.Replicas != nil {
			stsWant = *sts.Spec.Replicas
		}
		switch {
		case stsWant == 0 && sts.Status.Replicas == 0:
			available, availReason, availMsg = true, ReasonStopped, "replicas is 0: the server is stopped, its volumes are kept"
		case sts.Status.ReadyReplicas >= 1:
			available, availReason, availMsg = true, ReasonPodsReady, fmt.Sprintf("%d/%d pods ready", sts.Status.ReadyReplicas, stsWant)
		default:
			availMsg = fmt.Sprintf("0/%d pods ready; see kubectl describe pod %s-0", stsWant, ds.Name)
		}
		if sts.Status.ObservedGeneration < sts.Generation || sts.Status.UpdateRevision != sts.Status.CurrentRevision ||
			sts.Status.UpdatedReplicas != stsWant || sts.Status.Replicas != stsWant || sts.Status.ReadyReplicas != stsWant ||
			stsWant != wantReplicas {
			progressing, progReason = true, ReasonRollingOut
			progMsg = fmt.Sprintf("rolling out: %d/%d updated, %d ready", sts.Status.UpdatedReplicas, stsWant, sts.Status.ReadyReplicas)
		}
	} else if !b.configBroken {
		progressing, progReason, progMsg = true, ReasonReconciling, "creating the server"
		if b.dbNeeded && !b.dbOK {
			progMsg = "creating the server once its database is ready"
		}
	}
	if b.replacing != "" {
		progressing, progReason, progMsg = true, ReasonExpandingVolumes, b.replacing
	}
	set(ConditionAvailable, available, availReason, availMsg)
	set(ConditionProgressing, progressing, progReason, progMsg)

	if b.cp.attempted {
		cpStatus := metav1.ConditionFalse
		switch {
		case b.cp.ready:
			cpStatus = metav1.ConditionTrue
		case b.cp.unknown:
			cpStatus = metav1.ConditionUnknown
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: ConditionControlPlaneReady, Status: cpStatus, Reason: b.cp.reason, Message: b.cp.message, ObservedGeneration: gen,
		})
		if b.cp.storageNeeded && b.cp.storageReason != "" {
			set(ConditionStorageReady, b.cp.storageOK, b.cp.storageReason, b.cp.storageMsg)
		}
	}
	if !s3Configured(ds) {
		meta.RemoveStatusCondition(&st.Conditions, ConditionStorageReady)
	}
	cpOK, cpReason, cpMsg := controlPlaneReady(st.Conditions, available)
	if cpOK && b.cp.unknown {
		b.warnings = append(b.warnings, b.cp.message)
	}

	helmOK, helmMsg := helmReady(ds.Status.Conditions)
	ready, readyReason, readyMsg := true, ReasonAllReady, "the server is ready"
	switch {
	case b.failReason != "":
		ready, readyReason, readyMsg = false, b.failReason, b.failMessage
	case !b.configOK:
		ready, readyReason, readyMsg = false, b.configReason, b.configMessage
	case b.dbNeeded && !b.dbOK:
		ready, readyReason, readyMsg = false, b.dbReason, b.dbMessage
	case !helmOK:
		ready, readyReason, readyMsg = false, ReasonNotDeployed, helmMsg
	case progressing:
		ready, readyReason, readyMsg = false, progReason, progMsg
	case !available:
		ready, readyReason, readyMsg = false, availReason, availMsg
	case !cpOK:
		ready, readyReason, readyMsg = false, cpReason, cpMsg
	}
	if ready && availReason == ReasonStopped {
		readyReason, readyMsg = ReasonStopped, availMsg
	}
	if ready && len(b.warnings) > 0 {
		readyMsg += "; warnings: " + strings.Join(b.warnings, "; ")
	}
	set(ConditionReady, ready, readyReason, readyMsg)

	switch {
	case b.configBroken:
		st.Phase = v1alpha1.PhaseFailed
	case ready && availReason == ReasonStopped:
		st.Phase = v1alpha1.PhaseStopped
	case ready:
		st.Phase = v1alpha1.PhaseRunning
	default:
		st.Phase = v1alpha1.PhasePending
	}
	return st
}

// controlPlaneReady reports whether the control-plane conditions allow Ready. They count only
// while the pod is available (the step runs once it is). ControlPlaneReady=Unknown (the API
// did not answer the operator) does not hold Ready back: the pod's own readiness probe is the
// API, so this is the operator's network path; Ready then carries it as a warning.
func controlPlaneReady(conds []metav1.Condition, available bool) (bool, string, string) {
	if !available {
		return true, "", ""
	}
	if c := meta.FindStatusCondition(conds, ConditionControlPlaneReady); c != nil && c.Status == metav1.ConditionFalse {
		return false, c.Reason, c.Message
	}
	if c := meta.FindStatusCondition(conds, ConditionStorageReady); c != nil && c.Status != metav1.ConditionTrue {
		return false, c.Reason, c.Message
	}
	return true, "", ""
}

// helmReady reports whether the Helm reconciler has deployed the current release.
func helmReady(conds []metav1.Condition) (bool, string) {
	if c := meta.FindStatusCondition(conds, ConditionIrreconcilable); c != nil && c.Status == metav1.ConditionTrue {
		return false, "the Helm reconciler cannot render the chart: " + c.Message
	}
	if c := meta.FindStatusCondition(conds, ConditionReleaseFailed); c != nil && c.Status == metav1.ConditionTrue {
		return false, "the Helm release failed: " + c.Message
	}
	if !meta.IsStatusConditionTrue(conds, ConditionDeployed) {
		return false, "waiting for the Helm reconciler to deploy the ConfigMap and Services"
	}
	return true, ""
}

// goConditions is the subset of conditions the Go controller owns.
func goConditions(all []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range all {
		if !isHelmCondition(c.Type) {
			out = append(out, c)
		}
	}
	return out
}

// writeStatus applies the Go-owned status with server-side apply, only when it changed, and
// emits events on Ready transitions.
func (r *Reconciler) writeStatus(ctx context.Context, ds *v1alpha1.DittoServer, b *statusBuilder) error {
	if b.deferWrite && b.failReason == "" {
		return nil
	}
	desired := b.build()
	current := ds.Status.DeepCopy()
	current.Conditions = goConditions(current.Conditions)
	current.DeployedRelease = nil
	if equality.Semantic.DeepEqual(*current, desired) {
		return nil
	}
	key := statusKey(desired)
	if last, ok := r.lastStatus.Load(ds.UID); ok && last.(appliedStatus) == (appliedStatus{from: ds.ResourceVersion, key: key}) {
		// Computed from the same object as our last write, with the same result: the cache has
		// not caught up with that write yet. Applying (and emitting events) again would repeat it.
		return nil
	}
	r.emitTransitionEvents(ds, desired)
	r.emitDatabaseEvents(ds, desired)
	r.emitControlPlaneEvents(ds, desired)
	if err := r.applyStatus(ctx, ds, desired); err != nil {
		r.lastStatus.Delete(ds.UID)
		return err
	}
	r.lastStatus.Store(ds.UID, appliedStatus{from: ds.ResourceVersion, key: key})
	return nil
}

// appliedStatus is the last status write of a server: the resourceVersion of the object it
// was computed from and statusKey of what was written.
type appliedStatus struct{ from, key string }

// statusKey identifies a desired status regardless of condition transition times (which
// build() sets to now for every condition that changes).
func statusKey(st v1alpha1.DittoServerStatus) string {
	st.Conditions = append([]metav1.Condition(nil), st.Conditions...)
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	b, _ := json.Marshal(st)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (r *Reconciler) applyStatus(ctx context.Context, ds *v1alpha1.DittoServer, status v1alpha1.DittoServerStatus) error {
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	statusMap := map[string]any{}
	if err := json.Unmarshal(raw, &statusMap); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       v1alpha1.DittoServerKind,
		"metadata":   map[string]any{"name": ds.Name, "namespace": ds.Namespace},
		"status":     statusMap,
	}}
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}

func (r *Reconciler) emitTransitionEvents(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus) {
	old := meta.FindStatusCondition(ds.Status.Conditions, ConditionReady)
	now := meta.FindStatusCondition(desired.Conditions, ConditionReady)
	if now == nil {
		return
	}
	wasReady := old != nil && old.Status == metav1.ConditionTrue
	switch {
	case now.Status == metav1.ConditionTrue && !wasReady:
		r.Recorder.Event(ds, corev1.EventTypeNormal, EventReady, now.Message)
	case now.Status != metav1.ConditionTrue && (old == nil || old.Reason != now.Reason):
		if isFailureReason(now.Reason) {
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, EventReconcileFailed, "%s: %s", now.Reason, now.Message)
		} else if wasReady {
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, EventNotReady, "%s: %s", now.Reason, now.Message)
		}
	}
}

// emitDatabaseEvents emits an event when DatabaseReady changes status or reason (not when only
// its message changes, e.g. the Percona state), and once when postgresSecretRef starts being
// ignored.
func (r *Reconciler) emitDatabaseEvents(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus) {
	old := meta.FindStatusCondition(ds.Status.Conditions, ConditionDatabaseReady)
	now := meta.FindStatusCondition(desired.Conditions, ConditionDatabaseReady)
	if now == nil {
		return
	}
	wasReady := old != nil && old.Status == metav1.ConditionTrue
	if old == nil || old.Status != now.Status || old.Reason != now.Reason {
		switch {
		case now.Status == metav1.ConditionTrue:
			r.Recorder.Event(ds, corev1.EventTypeNormal, EventDatabaseReady, now.Message)
		case now.Reason == ReasonPerconaCRDMissing:
			r.Recorder.Event(ds, corev1.EventTypeWarning, EventPerconaCRDMissing, now.Message)
		case now.Reason == ReasonPerconaNotReady || now.Reason == ReasonPerconaSecretMissing:
			kind := corev1.EventTypeNormal
			if wasReady {
				kind = corev1.EventTypeWarning
			}
			r.Recorder.Event(ds, kind, EventPerconaNotReady, now.Message)
		default:
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, EventReconcileFailed, "%s: %s", now.Reason, now.Message)
		}
	}
	if strings.Contains(now.Message, PostgresSecretIgnoredMessage) && (old == nil || !strings.Contains(old.Message, PostgresSecretIgnoredMessage)) {
		r.Recorder.Event(ds, corev1.EventTypeWarning, EventPostgresSecretIgnored, PostgresSecretIgnoredMessage)
	}
}

// emitControlPlaneEvents emits one event per change of status or reason of ControlPlaneReady
// and StorageReady (never one per reconcile).
func (r *Reconciler) emitControlPlaneEvents(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus) {
	changed := func(t string) (*metav1.Condition, bool) {
		old := meta.FindStatusCondition(ds.Status.Conditions, t)
		now := meta.FindStatusCondition(desired.Conditions, t)
		if now == nil {
			return nil, false
		}
		return now, old == nil || old.Status != now.Status || old.Reason != now.Reason
	}
	if now, ok := changed(ConditionControlPlaneReady); ok && now.Status == metav1.ConditionFalse {
		reason := EventControlPlaneFailed
		if now.Reason == ReasonAdminCredentialUnauthorized {
			reason = EventAdminCredentialUnauthorized
		}
		r.Recorder.Event(ds, corev1.EventTypeWarning, reason, now.Message)
	}
	if now, ok := changed(ConditionStorageReady); ok {
		if now.Status == metav1.ConditionTrue {
			r.Recorder.Event(ds, corev1.EventTypeNormal, EventStorageReady, now.Message)
		} else {
			r.Recorder.Event(ds, corev1.EventTypeWarning, EventStorageNotReady, now.Message)
		}
	}
}

func isFailureReason(reason string) bool {
	switch reason {
	case ReasonSecretMissing, ReasonSecretInvalid, ReasonRenderFailed, ReasonInvalidSpec, ReasonReconciling, ReasonVolumeExpansionBlocked:
		return true
	}
	return false
}
