package hybrid

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

// invalidSpecRecheck re-runs the guard for an invalid spec that no watch may fix (e.g. the
// Percona CRD being installed later), and retries a volume expansion the StorageClass refused.
// StorageClass and Secret changes trigger a reconcile anyway.
const invalidSpecRecheck = 2 * time.Minute

// validateSpec is the guard: the validating webhook's checks, for a spec admitted without the
// webhook or made invalid by the cluster changing since. An invalid spec is reported and not
// rolled out; warnings go into Ready's message.
func (r *Reconciler) validateSpec(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	findings, err := r.Validator.Validate(ctx, s.ds)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.findings = findings
	s.status.warnings = append(s.status.warnings, findings.Warnings...)
	problem := findings.Blocking()
	if problem == nil {
		return ctrl.Result{}, proceed, nil
	}
	if findings.PerconaCRDMissing {
		s.status.database = &finding{reason: specs.ReasonPerconaCRDMissing, message: validation.PerconaCRDMissingMessage}
	}
	s.status.configFailed(problem)
	return ctrl.Result{RequeueAfter: invalidSpecRecheck}, halt, nil
}

// renderedConfig is the config.yaml a server's spec renders to, at one generation.
type renderedConfig struct {
	generation int64
	configYAML string
}

// renderConfig renders the chart for ds and returns its config.yaml. A render depends only on
// the spec (with the operator-wide overrides, fixed for the process), the name and namespace,
// so the last one is kept per server and generation: a server is reconciled about six times
// on its way to Ready and every time its StatefulSet's status changes, and the render was the
// largest part of each reconcile.
func (r *Reconciler) renderConfig(ds *v1alpha1.DittoServer) (string, error) {
	if kept, ok := r.rendered.Load(ds.UID); ok && kept.(renderedConfig).generation == ds.Generation {
		return kept.(renderedConfig).configYAML, nil
	}
	rendered, err := r.Renderer.Render(ds)
	if err != nil {
		return "", err
	}
	configYAML, err := rendered.ConfigYAML()
	if err != nil {
		return "", err
	}
	r.rendered.Store(ds.UID, renderedConfig{generation: ds.Generation, configYAML: configYAML})
	return configYAML, nil
}

// awaitHelm halts until the ConfigMap the Helm reconciler renders exists. Nothing the later
// steps create is of use before it (the pod mounts it), so a new server's objects are created
// in one reconcile. A spec that does not render goes on: the config step reports it (Helm will
// not create the ConfigMap).
func (r *Reconciler) awaitHelm(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	if _, err := r.renderConfig(s.ds); err != nil {
		return ctrl.Result{}, proceed, nil
	}
	name := specs.ConfigMapName(s.ds)
	cm := &corev1.ConfigMap{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.ds.Namespace, Name: name}, cm)
	if apierrors.IsNotFound(err) {
		s.status.configPending(fmt.Sprintf("waiting for the Helm reconciler to create ConfigMap %s", name))
		// A new server: Helm's first status write (Initialized) and the ConfigMap's creation
		// bring us back within a second; a status written now would be replaced at once.
		s.status.deferWrite = meta.FindStatusCondition(s.ds.Status.Conditions, specs.ConditionInitialized) == nil
		return ctrl.Result{}, halt, nil
	}
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.configMap = cm
	return ctrl.Result{}, proceed, nil
}

// reconcileConfig waits until the ConfigMap the Helm reconciler rendered matches the spec, and
// computes the config hash from it and the referenced Secrets. The pod never gets a hash of a
// config it cannot see yet: the ConfigMap's update event brings the server back.
func (r *Reconciler) reconcileConfig(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	ds := s.ds
	var err error
	s.configYAML, err = r.renderConfig(ds)
	if err != nil {
		if problem, ok := specs.AsProblem(err); ok {
			s.status.configFailed(problem)
		} else {
			s.status.configFailed(&specs.Problem{Reason: specs.ReasonRenderFailed, Message: err.Error()})
		}
		return ctrl.Result{}, halt, nil
	}
	// awaitHelm read the ConfigMap; it goes on without one only for a spec that does not render.
	name, cm := specs.ConfigMapName(ds), s.configMap
	if cm == nil || cm.Data[specs.ConfigFileName] != s.configYAML {
		// The Helm upgrade has not landed yet; its ConfigMap event brings us back. Until then the
		// pod keeps the config it has.
		s.status.configPending(fmt.Sprintf("ConfigMap %s does not match the spec yet (Helm upgrade pending)", name))
		// Helm has not reported on this generation yet: its upgrade lands within a moment and
		// a status written now would be replaced at once. Once Helm has reported (a failed
		// upgrade), the pending config is written.
		init := meta.FindStatusCondition(ds.Status.Conditions, specs.ConditionInitialized)
		s.status.deferWrite = init == nil || init.ObservedGeneration < ds.Generation
		return ctrl.Result{}, halt, nil
	}
	if s.db.gate {
		// The configuration is fine; the pod waits for the database. status.configHash keeps
		// the hash the pod runs with (the Percona Secret is not part of it yet).
		s.status.configReady(ds.Status.ConfigHash)
		return ctrl.Result{}, halt, nil
	}
	hashed, err := specs.HashedConfig(s.configYAML)
	if err != nil {
		return ctrl.Result{}, halt, fmt.Errorf("reading ConfigMap %s: %w", name, err)
	}
	parts := slices.Concat(s.secrets.hashInput, s.db.hashInput)
	s.hash = specs.ConfigHash(hashed, parts)
	s.legacyHash = specs.ConfigHash(hashed, append(parts, s.secrets.adminHashPart))
	s.status.configReady(s.hash)
	return ctrl.Result{}, proceed, nil
}

// observeStatefulSet reads the current StatefulSet (if any) into the status.
func (r *Reconciler) observeStatefulSet(ctx context.Context, s *scope) error {
	sts := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.ds.Namespace, Name: s.ds.Name}, sts)
	if apierrors.IsNotFound(err) {
		s.status.observeStatefulSet(nil)
		return nil
	}
	if err != nil {
		return err
	}
	s.status.observeStatefulSet(sts)
	return nil
}

// observeAddresses reads the -file Service (Helm renders it) for the addresses clients use:
// its cluster IP and load-balancer ingress. The Service's changes bring the server back.
func (r *Reconciler) observeAddresses(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	svc := &corev1.Service{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.ds.Namespace, Name: specs.FileServiceName(s.ds)}, svc)
	switch {
	case apierrors.IsNotFound(err):
		s.status.addresses = nil
	case err != nil:
		return ctrl.Result{}, halt, err
	default:
		s.status.addresses = serviceAddresses(svc)
	}
	return ctrl.Result{}, proceed, nil
}

// serviceAddresses is a Service's cluster IPs, then its load-balancer ingress IPs and host names.
func serviceAddresses(svc *corev1.Service) []string {
	var out []string
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, in.IP)
		}
		if in.Hostname != "" {
			out = append(out, in.Hostname)
		}
	}
	return out
}

// reconcileControlPlane applies the spec through the DittoFS REST API once the pod is Ready.
func (r *Reconciler) reconcileControlPlane(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	sts := s.status.sts
	if r.ControlPlane == nil || sts == nil || sts.Status.ReadyReplicas < 1 || s.ds.Spec.EffectiveReplicas() == 0 {
		// Nothing listens yet; the StatefulSet's status change brings us back.
		return ctrl.Result{}, proceed, nil
	}
	out, err := r.ControlPlane.Apply(ctx, s.ds, s.secrets.admin, controlplane.Pod{
		Volumes: s.volumes, RollingOut: rollingOut(sts, s.ds.Spec.EffectiveReplicas()),
	})
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.status.controlPlane = &out
	s.status.warnings = append(s.status.warnings, unusedVolumes(s.ds, s.volumes, out.StoreVolume)...)
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, proceed, nil
}

// unusedVolumes reports the volumes of the pod that hold nothing: a cache or content volume the
// local block store is not on (a server made before the operator stopped provisioning them, or
// whose spec.s3 changed). They are kept: the operator never deletes a volume on its own.
func unusedVolumes(ds *v1alpha1.DittoServer, volumes []string, storeVolume string) []string {
	if storeVolume == "" {
		return nil
	}
	var out []string
	for _, v := range volumes {
		if v == specs.VolumeCache || v == specs.VolumeContent {
			if v != storeVolume {
				out = append(out, fmt.Sprintf("PersistentVolumeClaim %s-%s-0 (%s) holds nothing: the local block store is on the %s volume; it is kept, delete it yourself if you do not need it",
					v, ds.Name, specs.SizeField(v), storeVolume))
			}
		}
	}
	return out
}
