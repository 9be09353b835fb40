// Package controlplane applies a DittoServer's spec through the DittoFS REST API of its running
// pod: the operator's own account, the adapters, the S3 remote block store and the shares
// (docs/CONTROLPLANE.md). It takes its Kubernetes dependencies explicitly (Deps) and returns an
// Outcome — the ControlPlaneReady and StorageReady conditions and when to look again — that
// the Go controller's status step reads.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// Options configure what the operator does through the DittoFS REST API.
type Options struct {
	// Disabled turns the control-plane step off: no API call, no ControlPlaneReady or
	// StorageReady condition. test/testenv sets it (envtest runs no server).
	Disabled bool
	// ClusterDomain of the in-cluster Service DNS names; "" means DefaultClusterDomain.
	ClusterDomain string
	// APIAddress is how the operator reaches a server's REST API: APIAddressService (the
	// <name>-api Service's DNS name, the default) or APIAddressPodIP (the IP in the pod's status:
	// no cluster DNS needed, for an operator outside the cluster or without cluster DNS).
	APIAddress string
	// APIEndpoint is the resolver seam: the base URL of a server's REST API. nil means
	// APIAddress decides. Tests point it at a dfs they started.
	APIEndpoint func(ds *v1alpha1.DittoServer, clusterDomain string) string
	// HTTPClient for the API; nil means dittoapi.NewDefaultHTTPClient. Its transport must be an
	// *http.Transport, nil or TLSConfigurable: a server's TLS settings are set on a copy of it.
	HTTPClient *http.Client
	// PodPath maps a path inside the DittoFS pod (e.g. /data/metadata/default) to the path the
	// server sees; nil is the identity. Tests running dfs outside a pod map it to a temp dir.
	PodPath func(ds *v1alpha1.DittoServer, path string) string
	// AdapterPorts are the ports the adapters must listen on ("nfs", "smb"); nil means the
	// container ports 12049 and 1445 the StatefulSet and Services use. Tests running several
	// servers on one host pick free ports.
	AdapterPorts func(ds *v1alpha1.DittoServer) map[string]int
	// Resync is how often a converged server's control plane is checked for drift (the API
	// has no watch); 0 means DefaultResync.
	Resync time.Duration
	// LoopbackS3 accepts an S3 endpoint on a loopback address (as a private one: with
	// spec.s3.allowPrivateEndpoint). Only for an operator and a DittoFS on one host, as in the
	// tests, where the S3 service listens on 127.0.0.1; in a cluster, loopback is the pod itself.
	LoopbackS3 bool
	// Budget bounds the whole control-plane step of one reconcile (every API call, however
	// many), so a slow DittoFS never holds a worker of the Go controller for long; 0 means
	// DefaultBudget. Running out counts as the API not answering.
	Budget time.Duration
}

// Values of Options.APIAddress (the operator's --dittofs-api-address).
const (
	APIAddressService = "service"
	APIAddressPodIP   = "pod-ip"
)

// Defaults of Options.
const (
	DefaultBudget        = 30 * time.Second
	DefaultResync        = 10 * time.Minute
	DefaultClusterDomain = "cluster.local"
)

// DefaultAPIEndpoint is https://<name>-api.<namespace>.svc.<clusterDomain>:<controlPlane.port>
// (http:// with spec.controlPlane.tls.mode Disabled).
func DefaultAPIEndpoint(ds *v1alpha1.DittoServer, clusterDomain string) string {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	return fmt.Sprintf("%s://%s-api.%s.svc.%s:%d", specs.APIScheme(ds), ds.Name, ds.Namespace, clusterDomain, ds.Spec.APIPort())
}

// Requeue periods of the step (the drift check is Options.Resync).
const (
	retry            = 30 * time.Second // transient failure, store not healthy yet
	adminAuthBackoff = 5 * time.Minute  // the admin Secret is wrong: wait for the user
	// unreachableMax caps the retry of an API that does not answer: 30 s, doubling per failure
	// in a row, up to this. Any event of the server (pod, Secret, spec) retries at once.
	unreachableMax = 5 * time.Minute
)

// unreachableBackoff is the wait after the n-th failure in a row (n >= 1) to reach the API.
func unreachableBackoff(n int) time.Duration {
	d := retry
	for i := 1; i < n && d < unreachableMax; i++ {
		d *= 2
	}
	return min(d, unreachableMax)
}

// Deps are what the step reads and writes in Kubernetes.
type Deps struct {
	// Client reads the operator Secret <name>-operator-credentials (from the manager's cache)
	// and writes it.
	Client client.Client
	// Secrets reads the user's Secrets: the admin password and the S3 credentials.
	Secrets client.Reader
	// Pods reads the server's pod for its IP (Options.APIAddress pod-ip); uncached, as the
	// operator watches no pods.
	Pods     client.Reader
	Recorder record.EventRecorder
}

// Step keeps one API session per DittoServer.
type Step struct {
	deps Deps
	opts Options

	mu       sync.Mutex
	sessions map[types.UID]*session
	// unreachable counts the failures in a row to reach each server's API (for the backoff).
	unreachable map[types.UID]int
	// plain is the client of servers without TLS; tlsClients those of servers with (tls.go).
	plain      *http.Client
	tlsClients map[types.UID]tlsClient
}

// New returns the step with the defaults of opts filled in.
func New(opts Options, deps Deps) *Step {
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = DefaultClusterDomain
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = dittoapi.NewDefaultHTTPClient()
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	return &Step{deps: deps, opts: opts, plain: withMetrics(opts.HTTPClient),
		sessions: map[types.UID]*session{}, unreachable: map[types.UID]int{}, tlsClients: map[types.UID]tlsClient{}}
}

// Outcome is what one Apply observed.
type Outcome struct {
	// ControlPlane is the ControlPlaneReady condition (type, status, reason, message).
	ControlPlane metav1.Condition
	// Storage is the StorageReady condition; nil when spec.s3 is unset or the step did not get
	// as far as the store (the condition then keeps its last value).
	Storage *metav1.Condition
	// RequeueAfter is when to look again: the drift check, or a retry.
	RequeueAfter time.Duration
	// StoreVolume is the volume the local block store is on ("" when unknown or elsewhere).
	StoreVolume string
}

// k8sError marks a Kubernetes API failure inside the step: Apply returns it as the reconcile
// error (controller-runtime's backoff), not as a condition.
type k8sError struct{ err error }

func (e *k8sError) Error() string { return e.err.Error() }
func (e *k8sError) Unwrap() error { return e.err }

// run is one Apply for one server.
type run struct {
	*Step
	ds  *v1alpha1.DittoServer
	api *dittoapi.Client
	// hc is the HTTP client of this server's API (its TLS settings: tls.go).
	hc *http.Client
	// secret is the operator Secret, read once and updated in place by every write (empty,
	// without a name, until the operator account is provisioned).
	secret  *corev1.Secret
	storage *metav1.Condition
	// volumes the pod mounts; storeVolume is the one the local block store is on ("" unknown).
	volumes     []string
	storeVolume string
	rollingOut  bool
}

// Pod is what the controller knows of the server's pod.
type Pod struct {
	// Volumes the pod mounts (a new local block store goes on one of them).
	Volumes []string
	// RollingOut: the StatefulSet has not rolled its pod to the current template yet; the pod
	// that answers may run an older configuration.
	RollingOut bool
}

// Apply applies ds's spec through the REST API of its ready pod. admin is the Secret key of the
// admin password.
func (s *Step) Apply(ctx context.Context, ds *v1alpha1.DittoServer, admin specs.SecretKey, pod Pod) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Budget)
	defer cancel()
	base, err := s.endpoint(ctx, ds)
	if err != nil {
		return Outcome{}, err
	}

	secret := &corev1.Secret{}
	err = s.deps.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: specs.OperatorSecretName(ds)}, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return Outcome{}, err
	}
	if apierrors.IsNotFound(err) {
		secret = &corev1.Secret{}
	}
	r := &run{Step: s, ds: ds, secret: secret, volumes: pod.Volumes, rollingOut: pod.RollingOut}
	if r.hc, err = s.httpClient(ctx, ds); err != nil {
		var k8sErr *k8sError
		if problem, ok := specs.AsProblem(err); ok {
			return Outcome{ControlPlane: metav1.Condition{Type: specs.ConditionControlPlaneReady, Status: metav1.ConditionFalse,
				Reason: problem.Reason, Message: problem.Message}, RequeueAfter: adminAuthBackoff}, nil
		}
		if errors.As(err, &k8sErr) {
			return Outcome{}, k8sErr.err
		}
		return Outcome{}, err
	}
	if base == "" {
		// the pod has no IP (yet): as unreachable as a Service that does not answer
		base = "the IP of pod " + ds.Namespace + "/" + specs.PodName(ds, 0)
		err = &dittoapi.Error{Method: http.MethodGet, Path: "/", Err: errors.New("the pod's status has no IP")}
	} else {
		err = r.login(ctx, base, admin)
	}
	if err == nil {
		err = r.converge(ctx, base, admin)
		if dittoapi.IsUnauthorized(err) {
			// Token revoked or the server's user database changed: one fresh session.
			s.forgetSession(ds.UID)
			if err = r.login(ctx, base, admin); err == nil {
				err = r.converge(ctx, base, admin)
			}
		}
	}
	if !dittoapi.IsUnreachable(err) {
		s.markReached(ds.UID)
	}
	out := Outcome{Storage: r.storage, StoreVolume: r.storeVolume}
	cond := func(status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: specs.ConditionControlPlaneReady, Status: status, Reason: reason, Message: msg}
	}
	var k8sErr *k8sError
	problem, isProblem := specs.AsProblem(err)
	switch {
	case err == nil:
		out.ControlPlane = cond(metav1.ConditionTrue, specs.ReasonControlPlaneApplied, fmt.Sprintf("adapters, stores and shares applied through %s", base))
		out.RequeueAfter = s.opts.Resync
		if r.storage != nil && r.storage.Status != metav1.ConditionTrue {
			out.RequeueAfter = retry
		}
	case errors.As(err, &k8sErr):
		return Outcome{}, k8sErr.err
	case isProblem:
		// The admin Secret no longer logs in (or is empty): nothing to retry until the user
		// fixes it.
		out.ControlPlane = cond(metav1.ConditionFalse, problem.Reason, problem.Message)
		out.RequeueAfter = adminAuthBackoff
	case certificateRejected(err):
		// TLS works, trust does not: no backoff to the unreachable maximum, the user must act.
		out.ControlPlane = cond(metav1.ConditionFalse, specs.ReasonAPICertificateRejected, fmt.Sprintf(
			"the DittoFS API at %s presented a certificate the operator does not trust (%v); it must be signed by the CA in Secret %s key %q (or a system root when that key is absent) and name %s; fix the certificate or spec.controlPlane.tls",
			base, errors.Unwrap(err), specs.APITLSSecretName(ds), specs.APITLSCAKey, specs.APIServerName(ds)))
		out.RequeueAfter = retry
	case dittoapi.IsUnreachable(err):
		// The message stays the same from one failure to the next (no status write while the
		// API stays unreachable, whatever the network error); the error goes to the log, and
		// into an event when the condition first turns Unknown.
		n := s.markUnreachable(ds.UID)
		out.ControlPlane = cond(metav1.ConditionUnknown, specs.ReasonAPIUnreachable, fmt.Sprintf(
			"the DittoFS API at %s did not answer the operator, which cannot tell whether the adapters, stores and shares are in place; check that the operator reaches it (a NetworkPolicy, the cluster DNS: an operator outside the cluster or without cluster DNS needs --dittofs-api-address=pod-ip); it retries with a backoff of up to %s and at every change of the server (the operator log and the %s event have the error)",
			base, unreachableMax, specs.EventControlPlaneUnreachable))
		out.RequeueAfter = unreachableBackoff(n)
		log.FromContext(ctx).Info("DittoFS API unreachable", "url", base, "error", err.Error(), "failures", n, "retryIn", out.RequeueAfter)
		// Once per series of failures (a reconcile may start from a cached status that does not
		// show the first failure yet), and not again after an operator restart.
		if c := meta.FindStatusCondition(ds.Status.Conditions, specs.ConditionControlPlaneReady); n == 1 && (c == nil || c.Reason != specs.ReasonAPIUnreachable) {
			s.deps.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventControlPlaneUnreachable, "the DittoFS API at %s did not answer: %v", base, errors.Unwrap(err))
		}
	default:
		out.ControlPlane = cond(metav1.ConditionFalse, specs.ReasonControlPlaneFailed, err.Error())
		out.RequeueAfter = retry
		log.FromContext(ctx).Info("control-plane step failed", "error", err.Error())
	}
	return out, nil
}

// Pods: read the server's pod for its IP (--dittofs-api-address=pod-ip).
// +kubebuilder:rbac:groups="",resources=pods,verbs=get

// endpoint is the base URL of ds's REST API: the test seam, the pod's IP ("" while it has
// none) or the Service's DNS name.
func (s *Step) endpoint(ctx context.Context, ds *v1alpha1.DittoServer) (string, error) {
	switch {
	case s.opts.APIEndpoint != nil:
		return s.opts.APIEndpoint(ds, s.opts.ClusterDomain), nil
	case s.opts.APIAddress != APIAddressPodIP:
		return DefaultAPIEndpoint(ds, s.opts.ClusterDomain), nil
	}
	pod := &corev1.Pod{}
	if err := s.deps.Pods.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: specs.PodName(ds, 0)}, pod); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	if pod.Status.PodIP == "" {
		return "", nil
	}
	return specs.APIScheme(ds) + "://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(ds.Spec.APIPort()))), nil
}

// converge applies the admin password, adapters, the S3 store, the shares and their snapshot
// policies, and the LDAP and Kerberos identity providers. Steady state is read-only: one call per object (docs/CONTROLPLANE.md counts them).
func (r *run) converge(ctx context.Context, base string, admin specs.SecretKey) error {
	if err := r.applyAdminPassword(ctx, base, admin); err != nil {
		return err
	}
	if err := r.applyAdapters(ctx); err != nil {
		return err
	}
	remote, err := r.applyS3(ctx)
	if err != nil {
		return err
	}
	if err := r.applyShares(ctx, remote); err != nil {
		return err
	}
	if err := r.applySnapshotPolicies(ctx); err != nil {
		return err
	}
	if err := r.applyLDAP(ctx); err != nil {
		return err
	}
	if err := r.applyKerberos(ctx); err != nil {
		return err
	}
	r.storeVolume, err = r.applyLocalStoreSize(ctx)
	return err
}

// Forget drops everything kept for a server (it is being deleted).
func (s *Step) Forget(uid types.UID) {
	s.mu.Lock()
	delete(s.sessions, uid)
	delete(s.unreachable, uid)
	delete(s.tlsClients, uid)
	s.mu.Unlock()
}

// RestartStamps are the times the operator last changed something the running server reads
// only at startup (the operator Secret's AnnotationRemoteStoreUpdated and
// AnnotationKerberosUpdated, from the cache; "" when there is none). The StatefulSet carries them
// on the pod template: a new value restarts the pod, which then loads what changed.
func (s *Step) RestartStamps(ctx context.Context, ds *v1alpha1.DittoServer) (remoteStore, kerberos string, err error) {
	secret := &corev1.Secret{}
	err = s.deps.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: specs.OperatorSecretName(ds)}, secret)
	if apierrors.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return secret.Annotations[specs.AnnotationRemoteStoreUpdated], secret.Annotations[specs.AnnotationKerberosUpdated], nil
}

// markUnreachable records one more failure in a row to reach the API and returns it.
func (s *Step) markUnreachable(uid types.UID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, uid)
	s.unreachable[uid]++
	return s.unreachable[uid]
}

// markReached ends a series of failures to reach the API.
func (s *Step) markReached(uid types.UID) {
	s.mu.Lock()
	delete(s.unreachable, uid)
	s.mu.Unlock()
}

func (s *Step) podPath(ds *v1alpha1.DittoServer, p string) string {
	if s.opts.PodPath != nil {
		return s.opts.PodPath(ds, p)
	}
	return p
}

func (s *Step) adapterPorts(ds *v1alpha1.DittoServer) map[string]int {
	if s.opts.AdapterPorts != nil {
		return s.opts.AdapterPorts(ds)
	}
	return map[string]int{"nfs": specs.NFSAdapterPort, "smb": specs.SMBAdapterPort}
}
