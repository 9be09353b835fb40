package hybrid

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// Events are emitted when a status write changes a condition's status or reason — once per
// transition, never once per reconcile.

// transition is one condition before and after a status write (now nil: not in the new status).
type transition struct{ old, now *metav1.Condition }

func conditionTransition(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus, t string) transition {
	return transition{meta.FindStatusCondition(ds.Status.Conditions, t), meta.FindStatusCondition(desired.Conditions, t)}
}

func (tr transition) wasTrue() bool { return tr.old != nil && tr.old.Status == metav1.ConditionTrue }

// changed reports a new status or reason.
func (tr transition) changed() bool {
	return tr.now != nil && (tr.old == nil || tr.old.Status != tr.now.Status || tr.old.Reason != tr.now.Reason)
}

// emitEvents emits the events of the status about to be written.
func (r *Reconciler) emitEvents(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus) {
	r.emitReadyEvents(ds, conditionTransition(ds, desired, specs.ConditionReady))
	r.emitDatabaseEvents(ds, conditionTransition(ds, desired, specs.ConditionDatabaseReady))
	r.emitControlPlaneEvents(ds, conditionTransition(ds, desired, specs.ConditionControlPlaneReady),
		conditionTransition(ds, desired, specs.ConditionStorageReady))
}

// emitReadyEvents: Ready when the server becomes ready; a warning when the user must fix
// something, or when a ready server stops being ready.
func (r *Reconciler) emitReadyEvents(ds *v1alpha1.DittoServer, tr transition) {
	now := tr.now
	switch {
	case now == nil:
	case now.Status == metav1.ConditionTrue && !tr.wasTrue():
		r.Recorder.Event(ds, corev1.EventTypeNormal, specs.EventReady, now.Message)
	case now.Status != metav1.ConditionTrue && (tr.old == nil || tr.old.Reason != now.Reason):
		if isFailureReason(now.Reason) {
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventReconcileFailed, "%s: %s", now.Reason, now.Message)
		} else if tr.wasTrue() {
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventNotReady, "%s: %s", now.Reason, now.Message)
		}
	}
}

// emitDatabaseEvents: DatabaseReady changes (not when only its message changes, e.g. the Percona
// state), and once when postgresSecretRef starts being ignored.
func (r *Reconciler) emitDatabaseEvents(ds *v1alpha1.DittoServer, tr transition) {
	now := tr.now
	if now == nil {
		return
	}
	if tr.changed() {
		switch {
		case now.Status == metav1.ConditionTrue:
			r.Recorder.Event(ds, corev1.EventTypeNormal, specs.EventDatabaseReady, now.Message)
		case now.Reason == specs.ReasonPerconaCRDMissing:
			r.Recorder.Event(ds, corev1.EventTypeWarning, specs.EventPerconaCRDMissing, now.Message)
		case now.Reason == specs.ReasonPerconaNotReady || now.Reason == specs.ReasonPerconaSecretMissing:
			kind := corev1.EventTypeNormal
			if tr.wasTrue() {
				kind = corev1.EventTypeWarning
			}
			r.Recorder.Event(ds, kind, specs.EventPerconaNotReady, now.Message)
		default:
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventReconcileFailed, "%s: %s", now.Reason, now.Message)
		}
	}
	ignored := validation.PostgresSecretIgnoredMessage
	if strings.Contains(now.Message, ignored) && (tr.old == nil || !strings.Contains(tr.old.Message, ignored)) {
		r.Recorder.Event(ds, corev1.EventTypeWarning, specs.EventPostgresSecretIgnored, ignored)
	}
}

// emitControlPlaneEvents: ControlPlaneReady turning False, StorageReady changing.
func (r *Reconciler) emitControlPlaneEvents(ds *v1alpha1.DittoServer, cp, storage transition) {
	if cp.changed() && cp.now.Status == metav1.ConditionFalse {
		reason := specs.EventControlPlaneFailed
		if cp.now.Reason == specs.ReasonAdminCredentialUnauthorized {
			reason = specs.EventAdminCredentialUnauthorized
		}
		r.Recorder.Event(ds, corev1.EventTypeWarning, reason, cp.now.Message)
	}
	if storage.changed() {
		if storage.now.Status == metav1.ConditionTrue {
			r.Recorder.Event(ds, corev1.EventTypeNormal, specs.EventStorageReady, storage.now.Message)
		} else {
			r.Recorder.Event(ds, corev1.EventTypeWarning, specs.EventStorageNotReady, storage.now.Message)
		}
	}
}

// isFailureReason: Ready reasons the user must act on (reported as ReconcileFailed).
func isFailureReason(reason string) bool {
	switch reason {
	case specs.ReasonSecretMissing, specs.ReasonSecretInvalid, specs.ReasonRenderFailed, specs.ReasonInvalidSpec, specs.ReasonReconciling, specs.ReasonVolumeExpansionBlocked:
		return true
	}
	return false
}
