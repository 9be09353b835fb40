package hybrid

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// observed is what one reconcile found: the only input of the Go-owned status besides the
// DittoServer itself. The steps fill it; computeStatus turns it into conditions, one setter per
// condition, Ready last (it summarises the others).
type observed struct {
	config configState
	// database is DatabaseReady; nil when the server needs no database condition.
	database *finding
	// sts is the StatefulSet as applied or read (nil: none); stsObserved says it was looked at.
	sts         *appsv1.StatefulSet
	stsObserved bool
	// replacing is set while the StatefulSet is re-created for new volume sizes.
	replacing string
	// rolloutQueued is set while a new pod template waits for a rollout slot.
	rolloutQueued string
	// controlPlane is what the control-plane step observed (nil: it did not run).
	controlPlane *controlplane.Outcome
	// failure is an error that ended the reconcile (retried with a backoff).
	failure error
	// warnings do not keep the server from Ready; Ready's message carries them.
	warnings []string
	// perconaCluster is status.perconaClusterName (kept until the cluster is released).
	perconaCluster string
	// serviceMonitor is status.serviceMonitor: the ServiceMonitor the operator made.
	serviceMonitor string
	// addresses is status.addresses: the -file Service's cluster IP and load-balancer ingress.
	addresses []string
	// deferWrite skips this reconcile's status write (a write that would be replaced at once).
	deferWrite bool
}

// finding is one condition's status, reason and message as a step found them.
type finding struct {
	ok              bool
	reason, message string
}

// configState is ConfigReady: broken means the user must fix the spec or a Secret.
type configState struct {
	finding
	broken bool
	hash   string
}

func newObserved(ds *v1alpha1.DittoServer) observed {
	return observed{
		config:         configState{finding: finding{reason: specs.ReasonConfigPending, message: "configuration not rendered yet"}, hash: ds.Status.ConfigHash},
		perconaCluster: ds.Status.PerconaClusterName,
		serviceMonitor: ds.Status.ServiceMonitor,
		addresses:      ds.Status.Addresses,
	}
}

func (o *observed) configReady(hash string) {
	o.config = configState{finding: finding{ok: true, reason: specs.ReasonConfigRendered, message: "the ConfigMap matches the spec"}, hash: hash}
}

func (o *observed) configPending(msg string) {
	o.config.finding = finding{reason: specs.ReasonConfigPending, message: msg}
}

func (o *observed) configFailed(p *specs.Problem) {
	o.config.finding = finding{reason: p.Reason, message: p.Message}
	o.config.broken = true
}

func (o *observed) observeStatefulSet(sts *appsv1.StatefulSet) { o.sts, o.stsObserved = sts, true }

// computeStatus returns the desired Go-owned status, starting from the current one so condition
// transition times survive.
func computeStatus(ds *v1alpha1.DittoServer, o *observed) v1alpha1.DittoServerStatus {
	st := v1alpha1.DittoServerStatus{
		ObservedGeneration: ds.Generation,
		ConfigHash:         o.config.hash,
		PerconaClusterName: o.perconaCluster,
		ServiceMonitor:     o.serviceMonitor,
		Addresses:          o.addresses,
		Conditions:         goConditions(ds.Status.Conditions),
	}
	ep := specs.ServerEndpoints(ds)
	st.NFSEndpoint, st.SMBEndpoint, st.APIEndpoint = ep.NFS, ep.SMB, ep.API
	setReplicas(&st, o.sts)
	setImage(&st, ds, o.sts)

	c := conditions{list: &st.Conditions, generation: ds.Generation}
	setConfigReady(c, ds, o.config)
	setDatabaseReady(c, o.database)
	setAvailable(c, ds, o.sts)
	setProgressing(c, ds, o)
	setControlPlaneReady(c, ds, o.controlPlane)
	setReady(c, ds, o)
	st.Phase = phase(st.Conditions, o.config.broken)
	return st
}

// conditions sets conditions of one status at one generation.
type conditions struct {
	list       *[]metav1.Condition
	generation int64
}

func (c conditions) set(t string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(c.list, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: c.generation})
}

func (c conditions) setFinding(t string, f finding) {
	c.set(t, boolStatus(f.ok), f.reason, f.message)
}

func (c conditions) get(t string) *metav1.Condition { return meta.FindStatusCondition(*c.list, t) }

func boolStatus(ok bool) metav1.ConditionStatus {
	if ok {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

func setReplicas(st *v1alpha1.DittoServerStatus, sts *appsv1.StatefulSet) {
	if sts != nil {
		st.Replicas, st.ReadyReplicas, st.AvailableReplicas = sts.Status.Replicas, sts.Status.ReadyReplicas, sts.Status.AvailableReplicas
	}
}

// setImage: the image of the StatefulSet's DittoFS container when there is one, else the
// image the spec asks for.
func setImage(st *v1alpha1.DittoServerStatus, ds *v1alpha1.DittoServer, sts *appsv1.StatefulSet) {
	st.Image = specs.ServerImage(ds)
	if sts == nil {
		return
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == specs.ContainerName {
			st.Image = c.Image
		}
	}
}

// setConfigReady: the rendered ConfigMap exists and matches the spec, and the referenced
// Secrets are usable.
func setConfigReady(c conditions, ds *v1alpha1.DittoServer, cfg configState) {
	f := cfg.finding
	if f.ok {
		f.message = fmt.Sprintf("ConfigMap %s matches the spec", specs.ConfigMapName(ds))
	}
	c.setFinding(specs.ConditionConfigReady, f)
}

// setDatabaseReady: PostgreSQL (Percona or a postgresSecretRef) is usable; absent for SQLite.
func setDatabaseReady(c conditions, db *finding) {
	if db == nil {
		meta.RemoveStatusCondition(c.list, specs.ConditionDatabaseReady)
		return
	}
	c.setFinding(specs.ConditionDatabaseReady, *db)
}

// stsReplicas is the replica count the StatefulSet asks for.
func stsReplicas(sts *appsv1.StatefulSet) int32 {
	if sts.Spec.Replicas != nil {
		return *sts.Spec.Replicas
	}
	return 1
}

// setAvailable: a pod is ready, or the server is stopped (replicas 0) on purpose.
func setAvailable(c conditions, ds *v1alpha1.DittoServer, sts *appsv1.StatefulSet) {
	switch {
	case sts == nil:
		c.set(specs.ConditionAvailable, metav1.ConditionFalse, specs.ReasonPodsNotReady, "the StatefulSet does not exist yet")
	case stsReplicas(sts) == 0 && sts.Status.Replicas == 0:
		c.set(specs.ConditionAvailable, metav1.ConditionTrue, specs.ReasonStopped, "replicas is 0: the server is stopped, its volumes are kept")
	case sts.Status.ReadyReplicas >= 1:
		c.set(specs.ConditionAvailable, metav1.ConditionTrue, specs.ReasonPodsReady, fmt.Sprintf("%d/%d pods ready", sts.Status.ReadyReplicas, stsReplicas(sts)))
	default:
		c.set(specs.ConditionAvailable, metav1.ConditionFalse, specs.ReasonPodsNotReady, fmt.Sprintf("0/%d pods ready; see kubectl describe pod %s-0", stsReplicas(sts), ds.Name))
	}
}

// setProgressing: a rollout, a scale, the first creation or a StatefulSet re-creation is in
// flight.
func setProgressing(c conditions, ds *v1alpha1.DittoServer, o *observed) {
	sts := o.sts
	switch {
	case o.replacing != "":
		c.set(specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonExpandingVolumes, o.replacing)
	case o.rolloutQueued != "":
		c.set(specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonRolloutQueued, o.rolloutQueued)
	case sts == nil && o.config.broken:
		c.set(specs.ConditionProgressing, metav1.ConditionFalse, specs.ReasonRolledOut, "no rollout in flight")
	case sts == nil && o.database != nil && !o.database.ok:
		c.set(specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonReconciling, "creating the server once its database is ready")
	case sts == nil:
		c.set(specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonReconciling, "creating the server")
	case rollingOut(sts, ds.Spec.EffectiveReplicas()):
		c.set(specs.ConditionProgressing, metav1.ConditionTrue, specs.ReasonRollingOut,
			fmt.Sprintf("rolling out: %d/%d updated, %d ready", sts.Status.UpdatedReplicas, stsReplicas(sts), sts.Status.ReadyReplicas))
	default:
		c.set(specs.ConditionProgressing, metav1.ConditionFalse, specs.ReasonRolledOut, "no rollout in flight")
	}
}

// rollingOut reports whether the StatefulSet has not reached its own spec, or its spec not the
// server's replica count.
func rollingOut(sts *appsv1.StatefulSet, wantReplicas int32) bool {
	want := stsReplicas(sts)
	return sts.Status.ObservedGeneration < sts.Generation || sts.Status.UpdateRevision != sts.Status.CurrentRevision ||
		sts.Status.UpdatedReplicas != want || sts.Status.Replicas != want || sts.Status.ReadyReplicas != want ||
		want != wantReplicas
}

// setControlPlaneReady sets ControlPlaneReady and StorageReady from the control-plane step, when
// it ran; otherwise both keep their last value. StorageReady goes when spec.s3 goes.
func setControlPlaneReady(c conditions, ds *v1alpha1.DittoServer, out *controlplane.Outcome) {
	if out != nil {
		cp := out.ControlPlane
		c.set(specs.ConditionControlPlaneReady, cp.Status, cp.Reason, cp.Message)
		if st := out.Storage; st != nil && specs.S3Configured(ds) {
			c.set(specs.ConditionStorageReady, st.Status, st.Reason, st.Message)
		}
	}
	if !specs.S3Configured(ds) {
		meta.RemoveStatusCondition(c.list, specs.ConditionStorageReady)
	}
}

// setReady is the promise to the user: the server answers and serves what the spec declares.
// It is False with the reason of the first thing that is not right, in this order: a failed
// reconcile, the config, the database, the Helm release, a rollout, the pods, the control plane.
// Warnings (no-effect fields, an unreachable API) ride along in the message of Ready=True.
func setReady(c conditions, ds *v1alpha1.DittoServer, o *observed) {
	notReady := func(reason, msg string) { c.set(specs.ConditionReady, metav1.ConditionFalse, reason, msg) }
	helmOK, helmMsg := helmReady(ds.Status.Conditions)
	available := c.get(specs.ConditionAvailable)
	progressing := c.get(specs.ConditionProgressing)
	db := c.get(specs.ConditionDatabaseReady)
	switch {
	case o.failure != nil:
		notReady(specs.ReasonReconciling, o.failure.Error())
		return
	case !o.config.ok:
		notReady(o.config.reason, o.config.message)
		return
	case db != nil && db.Status != metav1.ConditionTrue:
		notReady(db.Reason, db.Message)
		return
	case !helmOK:
		notReady(specs.ReasonNotDeployed, helmMsg)
		return
	case progressing.Status == metav1.ConditionTrue:
		notReady(progressing.Reason, progressing.Message)
		return
	case available.Status != metav1.ConditionTrue:
		notReady(available.Reason, available.Message)
		return
	}
	if reason, msg, ok := controlPlaneBlocks(*c.list); ok {
		notReady(reason, msg)
		return
	}
	reason, msg := specs.ReasonAllReady, "the server is ready"
	if available.Reason == specs.ReasonStopped {
		reason, msg = specs.ReasonStopped, available.Message
	}
	if len(o.warnings) > 0 {
		msg += "; warnings: " + strings.Join(o.warnings, "; ")
	}
	c.set(specs.ConditionReady, metav1.ConditionTrue, reason, msg)
}

// controlPlaneBlocks reports whether the control-plane conditions hold Ready back. They count
// only while the pod is available (the step runs once it is). ControlPlaneReady=Unknown (the
// API did not answer the operator) holds it back too: the operator cannot tell whether the
// adapters, stores and shares the spec declares are in place.
func controlPlaneBlocks(conds []metav1.Condition) (string, string, bool) {
	if c := meta.FindStatusCondition(conds, specs.ConditionControlPlaneReady); c != nil && c.Status != metav1.ConditionTrue {
		return c.Reason, c.Message, true
	}
	if c := meta.FindStatusCondition(conds, specs.ConditionStorageReady); c != nil && c.Status != metav1.ConditionTrue {
		return c.Reason, c.Message, true
	}
	return "", "", false
}

// helmReady reports whether the Helm reconciler has deployed the current release.
func helmReady(conds []metav1.Condition) (bool, string) {
	if c := meta.FindStatusCondition(conds, specs.ConditionIrreconcilable); c != nil && c.Status == metav1.ConditionTrue {
		return false, "the Helm reconciler cannot render the chart: " + c.Message
	}
	if c := meta.FindStatusCondition(conds, specs.ConditionReleaseFailed); c != nil && c.Status == metav1.ConditionTrue {
		return false, "the Helm release failed: " + c.Message
	}
	if !meta.IsStatusConditionTrue(conds, specs.ConditionDeployed) {
		return false, "waiting for the Helm reconciler to deploy the ConfigMap and Services"
	}
	return true, ""
}

// phase summarises the status: Failed (the user must fix something), Stopped, Running, Pending.
func phase(conds []metav1.Condition, configBroken bool) v1alpha1.Phase {
	ready := meta.FindStatusCondition(conds, specs.ConditionReady)
	switch {
	case configBroken:
		return v1alpha1.PhaseFailed
	case ready.Status == metav1.ConditionTrue && ready.Reason == specs.ReasonStopped:
		return v1alpha1.PhaseStopped
	case ready.Status == metav1.ConditionTrue:
		return v1alpha1.PhaseRunning
	default:
		return v1alpha1.PhasePending
	}
}

// goConditions is the subset of conditions the Go controller owns.
func goConditions(all []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range all {
		if !specs.IsHelmCondition(c.Type) {
			out = append(out, c)
		}
	}
	return out
}
