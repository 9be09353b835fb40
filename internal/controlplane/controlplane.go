package hybrid

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
)

// ControlPlaneOptions configure what the operator does through the DittoFS REST API
// (docs/CONTROLPLANE.md).
type ControlPlaneOptions struct {
	// Disabled turns the control-plane step off: no API call, no ControlPlaneReady or
	// StorageReady condition. test/testenv sets it (envtest runs no server).
	Disabled bool
	// ClusterDomain of the in-cluster Service DNS names; "" means DefaultClusterDomain.
	ClusterDomain string
	// APIEndpoint is the resolver seam: the base URL of a server's REST API. nil means
	// DefaultAPIEndpoint (the <name>-api Service). Tests point it at a dfs they started.
	APIEndpoint func(ds *v1alpha1.DittoServer, clusterDomain string) string
	// HTTPClient for the API (TLS settings go here); nil means dittoapi.NewDefaultHTTPClient.
	HTTPClient *http.Client
	// PodPath maps a path inside the DittoFS pod (e.g. /data/metadata/default) to the path the
	// server sees; nil is the identity. Tests running dfs outside a pod map it to a temp dir.
	PodPath func(ds *v1alpha1.DittoServer, path string) string
	// AdapterPorts are the ports the adapters must listen on ("nfs", "smb"); nil means the
	// container ports 12049 and 1445 the StatefulSet and Services use. Tests running several
	// servers on one host pick free ports.
	AdapterPorts func(ds *v1alpha1.DittoServer) map[string]int
	// Resync is how often a converged server's control plane is checked for drift (the API
	// has no watch); 0 means DefaultControlPlaneResync.
	Resync time.Duration
	// Budget bounds the whole control-plane step of one reconcile (every API call, however
	// many), so a slow DittoFS never holds a worker of the Go controller for long; 0 means
	// DefaultControlPlaneBudget. Running out counts as the API not answering.
	Budget time.Duration
}

// DefaultControlPlaneBudget is the default time bound of one reconcile's control-plane step.
const DefaultControlPlaneBudget = 30 * time.Second

// DefaultControlPlaneResync is the default drift-check period of the control-plane step.
const DefaultControlPlaneResync = 10 * time.Minute

// DefaultClusterDomain is the default DNS domain of the cluster.
const DefaultClusterDomain = "cluster.local"

// DefaultAPIEndpoint is http://<name>-api.<namespace>.svc.<clusterDomain>:<controlPlane.port>.
func DefaultAPIEndpoint(ds *v1alpha1.DittoServer, clusterDomain string) string {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	return fmt.Sprintf("http://%s-api.%s.svc.%s:%d", ds.Name, ds.Namespace, clusterDomain, ds.Spec.APIPort())
}

// Names of what the operator creates in the server's control plane.
const (
	// OperatorUsername is the DittoFS user the operator works as.
	OperatorUsername = "dittofs-operator"
	// OperatorRole: every call the operator makes (users, stores, shares, adapter updates and
	// settings) requires the admin role in v0.29.0; "operator" may only list adapters.
	OperatorRole = "admin"
	// S3StoreName is the remote block store made from spec.s3.
	S3StoreName = "s3"
	// DefaultMetadataStoreName and DefaultLocalStoreName back the default share.
	DefaultMetadataStoreName = "default"
	DefaultLocalStoreName    = "default"
	// DefaultShareName is the share created when spec.shares is unset.
	DefaultShareName = "/export"
	// DefaultSharePermission is the share's permission for users without a grant, set when
	// the operator creates the share (so the share is mountable with no dfsctl step).
	DefaultSharePermission = "read-write"

	// OperatorSecretKeyUsername/Password are the keys of <name>-operator-credentials.
	OperatorSecretKeyUsername = "username"
	OperatorSecretKeyPassword = "password"
	// AnnotationS3ConfigHash on the operator Secret is the hash of the S3 store configuration
	// last sent (the server redacts the secret key on reads, so a rotation is seen here).
	AnnotationS3ConfigHash = "dittofs.dittofs.com/s3-config-hash"
	// AnnotationManagedShares on the operator Secret lists the shares the operator created
	// (comma-separated); only those are ever pruned.
	AnnotationManagedShares = "dittofs.dittofs.com/managed-shares"
)

// OperatorSecretName is the Secret with the operator account's credentials.
func OperatorSecretName(ds *v1alpha1.DittoServer) string { return ds.Name + "-operator-credentials" }

// Requeue periods of the control-plane step (the drift check is ControlPlaneOptions.Resync).
const (
	cpRetry            = 30 * time.Second // transient failure, store not healthy yet
	cpAdminAuthBackoff = 5 * time.Minute  // the admin Secret is wrong: wait for the user
	// cpUnreachableMax caps the retry of an API that does not answer: 30 s, doubling per
	// failure in a row, up to this. Any event of the server (pod, Secret, spec) retries at once.
	cpUnreachableMax = 5 * time.Minute
)

// unreachableBackoff is the wait after the n-th failure in a row (n >= 1) to reach the API.
func unreachableBackoff(n int) time.Duration {
	d := cpRetry
	for i := 1; i < n && d < cpUnreachableMax; i++ {
		d *= 2
	}
	return min(d, cpUnreachableMax)
}

// controlPlane keeps one API session per DittoServer.
type controlPlane struct {
	opts ControlPlaneOptions

	mu       sync.Mutex
	sessions map[types.UID]*cpSession
	// unreachable counts the failures in a row to reach each server's API (for the backoff).
	unreachable map[types.UID]int
}

type cpSession struct {
	client  *dittoapi.Client
	refresh string
	expires time.Time
}

func newControlPlane(opts ControlPlaneOptions) *controlPlane {
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = DefaultClusterDomain
	}
	if opts.APIEndpoint == nil {
		opts.APIEndpoint = DefaultAPIEndpoint
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = dittoapi.NewDefaultHTTPClient()
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultControlPlaneResync
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultControlPlaneBudget
	}
	return &controlPlane{opts: opts, sessions: map[types.UID]*cpSession{}, unreachable: map[types.UID]int{}}
}

// forget drops the API session of a server.
func (cp *controlPlane) forget(uid types.UID) {
	cp.mu.Lock()
	delete(cp.sessions, uid)
	cp.mu.Unlock()
}

// forgetServer drops everything kept for a deleted server.
func (cp *controlPlane) forgetServer(uid types.UID) {
	cp.mu.Lock()
	delete(cp.sessions, uid)
	delete(cp.unreachable, uid)
	cp.mu.Unlock()
}

// markUnreachable records one more failure in a row to reach the API and returns it.
func (cp *controlPlane) markUnreachable(uid types.UID) int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	delete(cp.sessions, uid)
	cp.unreachable[uid]++
	return cp.unreachable[uid]
}

// markReached ends a series of failures to reach the API.
func (cp *controlPlane) markReached(uid types.UID) {
	cp.mu.Lock()
	delete(cp.unreachable, uid)
	cp.mu.Unlock()
}

func (cp *controlPlane) podPath(ds *v1alpha1.DittoServer, p string) string {
	if cp.opts.PodPath != nil {
		return cp.opts.PodPath(ds, p)
	}
	return p
}

func (cp *controlPlane) adapterPorts(ds *v1alpha1.DittoServer) map[string]int {
	if cp.opts.AdapterPorts != nil {
		return cp.opts.AdapterPorts(ds)
	}
	return map[string]int{"nfs": NFSAdapterPort, "smb": SMBAdapterPort}
}

// errAdminUnauthorized: the admin Secret's password no longer logs in.
var errAdminUnauthorized = errors.New("admin login refused")

// cpOutcome is what the control-plane step observed.
type cpOutcome struct {
	attempted bool
	ready     bool
	unknown   bool // the API did not answer (Ready is not held back, see docs/CONTROLPLANE.md)
	reason    string
	message   string

	storageNeeded bool
	storageOK     bool
	storageReason string
	storageMsg    string
}

// reconcileControlPlane applies the spec through the REST API once the pod is Ready.
func (r *Reconciler) reconcileControlPlane(ctx context.Context, ds *v1alpha1.DittoServer, sts *appsv1.StatefulSet, admin SecretKey, st *statusBuilder) (ctrl.Result, error) {
	if r.cp == nil {
		return ctrl.Result{}, nil
	}
	if sts == nil || sts.Status.ReadyReplicas < 1 || ds.Spec.EffectiveReplicas() == 0 {
		// Nothing listens yet; the StatefulSet's status change brings us back.
		return ctrl.Result{}, nil
	}
	out := &st.cp
	out.attempted = true
	base := r.cp.opts.APIEndpoint(ds, r.cp.opts.ClusterDomain)
	ctx, cancel := context.WithTimeout(ctx, r.cp.opts.Budget)
	defer cancel()

	c, err := r.cpSession(ctx, ds, base, admin)
	if err == nil {
		err = r.applyControlPlane(ctx, ds, c, out)
		if dittoapi.IsUnauthorized(err) {
			// Token revoked or the server's user database changed: one fresh session.
			r.cp.forget(ds.UID)
			if c, err = r.cpSession(ctx, ds, base, admin); err == nil {
				err = r.applyControlPlane(ctx, ds, c, out)
			}
		}
	}
	if !dittoapi.IsUnreachable(err) {
		r.cp.markReached(ds.UID)
	}
	var k8sErr *k8sError
	switch {
	case err == nil:
		out.ready, out.reason, out.message = true, ReasonControlPlaneApplied, fmt.Sprintf("adapters, stores and shares applied through %s", base)
		if out.storageNeeded && !out.storageOK {
			return ctrl.Result{RequeueAfter: cpRetry}, nil
		}
		return ctrl.Result{RequeueAfter: r.cp.opts.Resync}, nil
	case errors.As(err, &k8sErr):
		return ctrl.Result{}, k8sErr.err
	case errors.Is(err, errAdminUnauthorized):
		out.reason = ReasonAdminCredentialUnauthorized
		out.message = fmt.Sprintf("the DittoFS API refused the admin password from Secret %s key %q (was it changed out of band?); put the current password in the Secret; the operator retries when the Secret changes or in %s",
			admin.Name, admin.Key, cpAdminAuthBackoff)
		return ctrl.Result{RequeueAfter: cpAdminAuthBackoff}, nil
	case dittoapi.IsUnreachable(err):
		// The message stays the same from one failure to the next (no status write while the
		// API stays unreachable, whatever the network error); the error goes to the log, and
		// into an event when the condition first turns Unknown.
		n := r.cp.markUnreachable(ds.UID)
		out.unknown, out.reason = true, ReasonAPIUnreachable
		out.message = fmt.Sprintf("the DittoFS API at %s did not answer the operator; it retries with a backoff of up to %s and at every change of the server (the operator log and the %s event have the error)",
			base, cpUnreachableMax, EventControlPlaneUnreachable)
		wait := unreachableBackoff(n)
		log.FromContext(ctx).Info("DittoFS API unreachable", "url", base, "error", err.Error(), "failures", n, "retryIn", wait)
		// Once per series of failures (a reconcile may start from a cached status that does not
		// show the first failure yet), and not again after an operator restart.
		if c := meta.FindStatusCondition(ds.Status.Conditions, ConditionControlPlaneReady); n == 1 && (c == nil || c.Reason != ReasonAPIUnreachable) {
			r.Recorder.Eventf(ds, corev1.EventTypeWarning, EventControlPlaneUnreachable, "the DittoFS API at %s did not answer: %v", base, errors.Unwrap(err))
		}
		return ctrl.Result{RequeueAfter: wait}, nil
	default:
		out.reason, out.message = ReasonControlPlaneFailed, err.Error()
		log.FromContext(ctx).Info("control-plane step failed", "error", err.Error())
		return ctrl.Result{RequeueAfter: cpRetry}, nil
	}
}

// k8sError marks a Kubernetes API failure inside the control-plane step (returned as the
// reconcile error, with controller-runtime's backoff).
type k8sError struct{ err error }

func (e *k8sError) Error() string { return e.err.Error() }

// cpSession returns a logged-in client: the kept session, refreshed before expiry, else a
// login with the operator account, else the account is (re)provisioned with the admin Secret.
func (r *Reconciler) cpSession(ctx context.Context, ds *v1alpha1.DittoServer, base string, admin SecretKey) (*dittoapi.Client, error) {
	cp := r.cp
	cp.mu.Lock()
	s := cp.sessions[ds.UID]
	cp.mu.Unlock()
	if s != nil && s.client.BaseURL() == base {
		if time.Until(s.expires) > time.Minute {
			return s.client, nil
		}
		if s.refresh != "" {
			if tok, err := s.client.Refresh(ctx, s.refresh); err == nil {
				cp.keep(ds.UID, s.client, tok)
				return s.client, nil
			}
		}
	}
	c := dittoapi.New(base, cp.opts.HTTPClient)
	if s != nil && s.client.BaseURL() == base {
		c = s.client // keep the call counter
	}
	secret := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: OperatorSecretName(ds)}, secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, &k8sError{err}
	}
	if err == nil {
		password := string(secret.Data[OperatorSecretKeyPassword])
		tok, lerr := c.Login(ctx, OperatorUsername, password)
		if lerr == nil {
			if tok.User.MustChangePassword {
				// Left over from an interrupted provisioning: keep the same password.
				if tok, lerr = c.ChangeOwnPassword(ctx, password, password); lerr != nil {
					return nil, lerr
				}
			}
			cp.keep(ds.UID, c, tok)
			return c, nil
		}
		if !dittoapi.IsUnauthorized(lerr) {
			return nil, lerr
		}
		// The account is gone or its password changed (e.g. a fresh control-plane database).
	}
	if err := r.provisionOperator(ctx, ds, base, admin, secret); err != nil {
		return nil, err
	}
	password := string(secret.Data[OperatorSecretKeyPassword])
	tok, err := c.Login(ctx, OperatorUsername, password)
	if err != nil {
		return nil, fmt.Errorf("logging in as %s after provisioning: %w", OperatorUsername, err)
	}
	if tok.User.MustChangePassword {
		if tok, err = c.ChangeOwnPassword(ctx, password, password); err != nil {
			return nil, err
		}
	}
	cp.keep(ds.UID, c, tok)
	return c, nil
}

func (cp *controlPlane) keep(uid types.UID, c *dittoapi.Client, tok *dittoapi.Tokens) {
	exp := tok.ExpiresAt
	if exp.IsZero() {
		exp = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	cp.mu.Lock()
	cp.sessions[uid] = &cpSession{client: c, refresh: tok.RefreshToken, expires: exp}
	cp.mu.Unlock()
}

// provisionOperator logs in as admin and creates the operator account (or resets its
// password). The new password is written to the operator Secret first, so an interruption
// never leaves a password only the server knows. The admin password is never changed.
func (r *Reconciler) provisionOperator(ctx context.Context, ds *v1alpha1.DittoServer, base string, admin SecretKey, secret *corev1.Secret) error {
	adminSecret, err := r.readSecret(ctx, ds, admin.Name)
	if err != nil {
		return &k8sError{fmt.Errorf("reading the admin Secret %s: %w", admin.Name, err)}
	}
	ac := dittoapi.New(base, r.cp.opts.HTTPClient)
	if _, err := ac.Login(ctx, DefaultAdminUser, string(adminSecret.Data[admin.Key])); err != nil {
		if dittoapi.IsUnauthorized(err) {
			return errAdminUnauthorized
		}
		return err
	}
	password, err := randomString(32)
	if err != nil {
		return err
	}
	if err := r.writeOperatorSecret(ctx, ds, secret, map[string]string{
		OperatorSecretKeyUsername: OperatorUsername, OperatorSecretKeyPassword: password,
	}, nil); err != nil {
		return err
	}
	_, err = ac.CreateUser(ctx, dittoapi.CreateUserRequest{
		Username: OperatorUsername, Password: password, Role: OperatorRole,
		DisplayName: "dittofs-operator (Kubernetes operator account)",
	})
	if dittoapi.IsConflict(err) {
		err = ac.ResetUserPassword(ctx, OperatorUsername, password)
	}
	if err != nil {
		return fmt.Errorf("provisioning the operator account: %w", err)
	}
	r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventOperatorAccountProvisioned,
		"Provisioned DittoFS user %s (role %s); its credentials are in Secret %s", OperatorUsername, OperatorRole, OperatorSecretName(ds))
	return nil
}

// writeOperatorSecret creates or updates the operator Secret; data nil keeps the data,
// annotations are merged.
func (r *Reconciler) writeOperatorSecret(ctx context.Context, ds *v1alpha1.DittoServer, secret *corev1.Secret, data, annotations map[string]string) error {
	if secret.Name == "" {
		secret.ObjectMeta = metav1.ObjectMeta{Name: OperatorSecretName(ds), Namespace: ds.Namespace, Labels: CommonLabels(ds, "operator-credentials")}
		secret.Type = corev1.SecretTypeOpaque
		if err := controllerutil.SetControllerReference(ds, secret, r.Scheme); err != nil {
			return err
		}
	}
	if data != nil {
		secret.Data = map[string][]byte{}
		for k, v := range data {
			secret.Data[k] = []byte(v)
		}
	}
	for k, v := range annotations {
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		secret.Annotations[k] = v
	}
	var err error
	if secret.ResourceVersion == "" {
		err = r.Client.Create(ctx, secret)
	} else {
		err = r.Client.Update(ctx, secret)
	}
	if err != nil {
		return &k8sError{fmt.Errorf("writing Secret %s/%s: %w", ds.Namespace, secret.Name, err)}
	}
	return nil
}

// applyControlPlane converges adapters, the S3 store and the default share. Steady state is
// read-only: one call per object (docs/CONTROLPLANE.md counts them).
func (r *Reconciler) applyControlPlane(ctx context.Context, ds *v1alpha1.DittoServer, c *dittoapi.Client, out *cpOutcome) error {
	if err := r.applyAdapters(ctx, ds, c); err != nil {
		return err
	}
	remote, err := r.applyS3(ctx, ds, c, out)
	if err != nil {
		return err
	}
	return r.applyShares(ctx, ds, c, remote)
}

// applyAdapters keeps NFS enabled and SMB enabled per spec.smb.enabled, both on the container
// ports the Services target: a port changed out of band (dfsctl) is put back, so the
// Services never point at a port nothing listens on. spec.smb.maxConnections becomes the SMB
// adapter's max_connections setting.
func (r *Reconciler) applyAdapters(ctx context.Context, ds *v1alpha1.DittoServer, c *dittoapi.Client) error {
	list, err := c.ListAdapters(ctx)
	if err != nil {
		return err
	}
	have := map[string]dittoapi.Adapter{}
	for _, a := range list {
		have[a.Type] = a
	}
	ports := r.cp.adapterPorts(ds)
	want := map[string]bool{"nfs": true, "smb": ds.Spec.SMBEnabled()}
	for _, typ := range []string{"nfs", "smb"} {
		a, ok := have[typ]
		if !ok {
			return fmt.Errorf("the server has no %s adapter", typ)
		}
		enabled, port := want[typ], ports[typ]
		if a.Enabled == enabled && (a.Port == port || !enabled) {
			continue
		}
		req := dittoapi.UpdateAdapterRequest{Enabled: &enabled}
		if enabled {
			req.Port = &port
		}
		if _, err := c.UpdateAdapter(ctx, typ, req); err != nil {
			return fmt.Errorf("updating the %s adapter: %w", typ, err)
		}
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventAdapterUpdated, "%s adapter: enabled %t -> %t, port %d -> %d", typ, a.Enabled, enabled, a.Port, port)
	}
	if smb := ds.Spec.SMB; smb != nil && smb.Enabled && smb.MaxConnections != nil {
		set, err := c.GetAdapterSettings(ctx, "smb")
		if err != nil {
			return err
		}
		if n, _ := set["max_connections"].(float64); int32(n) != *smb.MaxConnections {
			if _, err := c.PatchAdapterSettings(ctx, "smb", map[string]any{"max_connections": *smb.MaxConnections}); err != nil {
				return fmt.Errorf("setting SMB max_connections: %w", err)
			}
		}
	}
	return nil
}

// s3Desired is the remote store configuration from spec.s3 and its Secret.
func (r *Reconciler) s3Desired(ctx context.Context, ds *v1alpha1.DittoServer) (map[string]any, string, error) {
	s3 := ds.Spec.S3
	cfg := map[string]any{"bucket": s3.Bucket}
	if s3.Region != "" {
		cfg["region"] = s3.Region
	}
	ref := s3.CredentialsSecretRef
	if ref == nil {
		return nil, "spec.s3.credentialsSecretRef is not set: DittoFS v0.29.0 needs an access key in the store configuration", nil
	}
	secret := &corev1.Secret{}
	if err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ref.SecretName}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("Secret %s (spec.s3.credentialsSecretRef) does not exist", ref.SecretName), nil
		}
		return nil, "", &k8sError{err}
	}
	key := func(k, def string) string {
		if k == "" {
			k = def
		}
		return k
	}
	idKey, secretKey, endpointKey := key(ref.AccessKeyIDKey, "accessKeyId"), key(ref.SecretAccessKeyKey, "secretAccessKey"), key(ref.EndpointKey, "endpoint")
	id, sk := string(secret.Data[idKey]), string(secret.Data[secretKey])
	if id == "" || sk == "" {
		return nil, fmt.Sprintf("Secret %s lacks key %q or %q (spec.s3.credentialsSecretRef)", ref.SecretName, idKey, secretKey), nil
	}
	cfg["access_key_id"], cfg["secret_access_key"] = id, sk
	if ep := strings.TrimSpace(string(secret.Data[endpointKey])); ep != "" {
		ep, private := normalizeEndpoint(ep, r.cp.opts.ClusterDomain)
		cfg["endpoint"] = ep
		if private {
			cfg["allow_private_endpoint"] = true
		}
	}
	return cfg, "", nil
}

// normalizeEndpoint adds a scheme when missing (http:// for cluster-internal hosts, https://
// otherwise) and reports whether the host is cluster-internal or private, for which DittoFS
// requires allow_private_endpoint.
func normalizeEndpoint(ep, clusterDomain string) (string, bool) {
	if !strings.Contains(ep, "://") {
		host := ep
		if i := strings.IndexAny(host, ":/"); i >= 0 {
			host = host[:i]
		}
		if isPrivateHost(host, clusterDomain) {
			ep = "http://" + ep
		} else {
			ep = "https://" + ep
		}
	}
	u, err := url.Parse(ep)
	if err != nil {
		return ep, false
	}
	return ep, isPrivateHost(u.Hostname(), clusterDomain)
}

func isPrivateHost(host, clusterDomain string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
	}
	return h == "localhost" || !strings.Contains(h, ".") || strings.HasSuffix(h, ".svc") ||
		strings.HasSuffix(h, ".svc."+clusterDomain) || strings.HasSuffix(h, "."+clusterDomain)
}

func configHash(cfg map[string]any) string {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		b, _ := json.Marshal(cfg[k])
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, b)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// applyS3 converges the remote store "s3" and reports its status as StorageReady. It returns
// the remote store name the share should use ("" without spec.s3).
func (r *Reconciler) applyS3(ctx context.Context, ds *v1alpha1.DittoServer, c *dittoapi.Client, out *cpOutcome) (string, error) {
	if ds.Spec.S3 == nil || ds.Spec.S3.Bucket == "" {
		return "", nil
	}
	out.storageNeeded = true
	want, problem, err := r.s3Desired(ctx, ds)
	if err != nil {
		return "", err
	}
	if problem != "" {
		out.storageReason, out.storageMsg = ReasonS3CredentialsMissing, problem
		return "", nil
	}
	hash := configHash(want)
	secret := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: OperatorSecretName(ds)}, secret); err != nil {
		return "", &k8sError{err}
	}

	store, err := c.GetBlockStore(ctx, dittoapi.BlockRemote, S3StoreName)
	updated := false
	switch {
	case dittoapi.IsNotFound(err):
		store, err = c.CreateBlockStore(ctx, dittoapi.BlockRemote, S3StoreName, "s3", want)
		if err == nil {
			r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventStoreCreated, "Created remote block store %s (bucket %s)", S3StoreName, ds.Spec.S3.Bucket)
		}
	case err != nil:
		return "", err
	case store.Type != "s3" || !s3Matches(store.ConfigMap(), want) || secret.Annotations[AnnotationS3ConfigHash] != hash:
		store, err = c.UpdateBlockStore(ctx, dittoapi.BlockRemote, S3StoreName, "s3", want)
		if err == nil {
			updated = true
			r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventStoreUpdated, "Updated remote block store %s from spec.s3 and Secret %s", S3StoreName, ds.Spec.S3.CredentialsSecretRef.SecretName)
		}
	}
	if err != nil {
		if dittoapi.IsTransient(err) || dittoapi.IsAuth(err) {
			return "", err
		}
		// The server rejected the configuration (e.g. an endpoint its SSRF guard refuses).
		out.storageReason, out.storageMsg = ReasonStoreRejected, fmt.Sprintf("the server rejected remote block store %s: %s", S3StoreName, dittoapi.MessageOf(err))
		return "", nil
	}
	if secret.Annotations[AnnotationS3ConfigHash] != hash {
		ann := map[string]string{AnnotationS3ConfigHash: hash}
		if updated {
			// A new configuration (rotation, spec change): the running shares keep the store
			// DittoFS built at start (v0.29.0). The new time reaches the pod template on the
			// reconcile this write triggers, and restarts the pod. A store only put back after
			// drift needs no restart: the running shares never stopped using our configuration.
			ann[AnnotationRemoteStoreUpdated] = time.Now().UTC().Format(time.RFC3339Nano)
		}
		if err := r.writeOperatorSecret(ctx, ds, secret, nil, ann); err != nil {
			return "", err
		}
	}
	switch store.Status.Status {
	case "healthy", "degraded":
		out.storageOK, out.storageReason = true, ReasonStoreHealthy
		out.storageMsg = fmt.Sprintf("remote block store %s (bucket %s) is %s", S3StoreName, ds.Spec.S3.Bucket, store.Status.Status)
		if store.Status.Message != "" {
			out.storageMsg += ": " + store.Status.Message
		}
	default:
		out.storageReason = ReasonStoreUnhealthy
		out.storageMsg = fmt.Sprintf("remote block store %s (bucket %s) is %s", S3StoreName, ds.Spec.S3.Bucket, orUnknown(store.Status.Status))
		if store.Status.Message != "" {
			out.storageMsg += ": " + store.Status.Message
		}
	}
	return S3StoreName, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// s3Matches compares what the server shows (secret key redacted) with the desired config.
func s3Matches(have, want map[string]any) bool {
	for k, v := range want {
		if k == "secret_access_key" {
			continue
		}
		if fmt.Sprint(have[k]) != fmt.Sprint(v) {
			return false
		}
	}
	if _, ok := want["allow_private_endpoint"]; !ok {
		if b, _ := have["allow_private_endpoint"].(bool); b {
			return false
		}
	}
	if _, ok := want["endpoint"]; !ok {
		if s, _ := have["endpoint"].(string); s != "" {
			return false
		}
	}
	return true
}

// desiredShares is spec.shares, or the default share when unset.
func desiredShares(ds *v1alpha1.DittoServer) []v1alpha1.ShareSpec {
	if ds.Spec.Shares == nil {
		return []v1alpha1.ShareSpec{{Name: DefaultShareName, DefaultPermission: DefaultSharePermission}}
	}
	out := make([]v1alpha1.ShareSpec, 0, len(ds.Spec.Shares))
	for _, s := range ds.Spec.Shares {
		if s.DefaultPermission == "" {
			s.DefaultPermission = DefaultSharePermission
		}
		out = append(out, s)
	}
	return out
}

// applyShares converges the declared shares with one list call in steady state: missing ones
// are created (with the default metadata and local stores, and the S3 store when
// configured), read-only and default permission are updated, and with spec.pruneShares the
// shares the operator created and the spec no longer lists are deleted. Shares the operator
// did not create are never touched. The names the operator created are kept in an
// annotation of its Secret.
func (r *Reconciler) applyShares(ctx context.Context, ds *v1alpha1.DittoServer, c *dittoapi.Client, remote string) error {
	list, err := c.ListShares(ctx)
	if err != nil {
		return err
	}
	have := map[string]dittoapi.Share{}
	for _, s := range list {
		have[s.Name] = s
	}
	secret := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: OperatorSecretName(ds)}, secret); err != nil {
		return &k8sError{err}
	}
	managed := splitNames(secret.Annotations[AnnotationManagedShares])
	wantNames := map[string]bool{}
	storesReady := false
	for _, want := range desiredShares(ds) {
		wantNames[want.Name] = true
		cur, ok := have[want.Name]
		if !ok {
			if !storesReady {
				if err := r.ensureShareStores(ctx, ds, c); err != nil {
					return err
				}
				storesReady = true
			}
			req := dittoapi.CreateShareRequest{
				Name: want.Name, MetadataStoreID: DefaultMetadataStoreName, LocalBlockStore: DefaultLocalStoreName,
				ReadOnly: want.ReadOnly, DefaultPermission: want.DefaultPermission,
			}
			if remote != "" {
				req.RemoteBlockStore = &remote
			}
			if _, err := c.CreateShare(ctx, req); err != nil && !dittoapi.IsConflict(err) {
				return fmt.Errorf("creating share %s: %w", want.Name, err)
			}
			managed[want.Name] = true
			r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventShareCreated, "Created share %s (metadata store %s, local block store %s, remote block store %q)",
				want.Name, DefaultMetadataStoreName, DefaultLocalStoreName, remote)
			continue
		}
		upd := dittoapi.UpdateShareRequest{}
		changed := false
		if cur.ReadOnly != want.ReadOnly {
			upd.ReadOnly, changed = &want.ReadOnly, true
		}
		if cur.DefaultPermission != want.DefaultPermission {
			upd.DefaultPermission, changed = &want.DefaultPermission, true
		}
		// spec.s3 added later: attach the store to a share that has none. A share already on
		// a remote store is left on it (the operator does not move data between stores).
		if remote != "" && (cur.RemoteBlockStoreID == nil || *cur.RemoteBlockStoreID == "") {
			upd.RemoteBlockStoreID, changed = &remote, true
		}
		if !changed {
			continue
		}
		if _, err := c.UpdateShare(ctx, want.Name, upd); err != nil {
			return fmt.Errorf("updating share %s: %w", want.Name, err)
		}
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventShareUpdated, "Updated share %s from spec.shares", want.Name)
	}
	if ds.Spec.PruneShares {
		for name := range managed {
			if wantNames[name] {
				continue
			}
			if _, exists := have[name]; exists {
				if err := c.DeleteShare(ctx, name); err != nil && !dittoapi.IsNotFound(err) {
					return fmt.Errorf("deleting share %s (spec.pruneShares): %w", name, err)
				}
				r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventShareDeleted, "Deleted share %s: no longer in spec.shares and spec.pruneShares is true", name)
			}
			delete(managed, name)
		}
	}
	if joined := joinNames(managed); joined != secret.Annotations[AnnotationManagedShares] {
		return r.writeOperatorSecret(ctx, ds, secret, nil, map[string]string{AnnotationManagedShares: joined})
	}
	return nil
}

// ensureShareStores creates the default metadata and local block stores when missing.
func (r *Reconciler) ensureShareStores(ctx context.Context, ds *v1alpha1.DittoServer, c *dittoapi.Client) error {
	if _, err := c.GetMetadataStore(ctx, DefaultMetadataStoreName); dittoapi.IsNotFound(err) {
		if _, err := c.CreateMetadataStore(ctx, DefaultMetadataStoreName, "badger",
			map[string]any{"path": r.cp.podPath(ds, MetadataMountPath+"/"+DefaultMetadataStoreName)}); err != nil && !dittoapi.IsConflict(err) {
			return fmt.Errorf("creating metadata store %s: %w", DefaultMetadataStoreName, err)
		}
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventStoreCreated, "Created metadata store %s (badger on the metadata volume)", DefaultMetadataStoreName)
	} else if err != nil {
		return err
	}
	if _, err := c.GetBlockStore(ctx, dittoapi.BlockLocal, DefaultLocalStoreName); dittoapi.IsNotFound(err) {
		if _, err := c.CreateBlockStore(ctx, dittoapi.BlockLocal, DefaultLocalStoreName, "fs",
			map[string]any{"path": r.cp.podPath(ds, CacheMountPath+"/blocks")}); err != nil && !dittoapi.IsConflict(err) {
			return fmt.Errorf("creating local block store %s: %w", DefaultLocalStoreName, err)
		}
		r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventStoreCreated, "Created local block store %s (fs on the cache volume)", DefaultLocalStoreName)
	} else if err != nil {
		return err
	}
	return nil
}

func splitNames(s string) map[string]bool {
	out := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out[n] = true
		}
	}
	return out
}

func joinNames(m map[string]bool) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// s3Configured reports whether spec.s3 asks for a remote block store.
func s3Configured(ds *v1alpha1.DittoServer) bool { return ds.Spec.S3 != nil && ds.Spec.S3.Bucket != "" }
