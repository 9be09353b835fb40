package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// desiredS3 is the remote store configuration from spec.s3 and its Secret, or the Problem that
// keeps the operator from building it.
func (r *run) desiredS3(ctx context.Context) (map[string]any, *specs.Problem, error) {
	s3 := r.ds.Spec.S3
	cfg := map[string]any{"bucket": s3.Bucket}
	if s3.Region != "" {
		cfg["region"] = s3.Region
	}
	ref := s3.CredentialsSecretRef
	if ref == nil {
		return nil, specs.Problemf(specs.ReasonS3CredentialsMissing, "spec.s3.credentialsSecretRef is not set: DittoFS v0.29.0 needs an access key in the store configuration"), nil
	}
	secret := &corev1.Secret{}
	if err := r.deps.Secrets.Get(ctx, types.NamespacedName{Namespace: r.ds.Namespace, Name: ref.SecretName}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, specs.Problemf(specs.ReasonS3CredentialsMissing, "Secret %s (spec.s3.credentialsSecretRef) does not exist", ref.SecretName), nil
		}
		return nil, nil, &k8sError{err}
	}
	idKey, secretKey, endpointKey := keyOr(ref.AccessKeyIDKey, "accessKeyId"), keyOr(ref.SecretAccessKeyKey, "secretAccessKey"), keyOr(ref.EndpointKey, "endpoint")
	id, sk := string(secret.Data[idKey]), string(secret.Data[secretKey])
	if id == "" || sk == "" {
		return nil, specs.Problemf(specs.ReasonS3CredentialsMissing, "Secret %s lacks key %q or %q (spec.s3.credentialsSecretRef)", ref.SecretName, idKey, secretKey), nil
	}
	cfg["access_key_id"], cfg["secret_access_key"] = id, sk
	if ep := strings.TrimSpace(string(secret.Data[endpointKey])); ep != "" {
		ep, reach := normalizeEndpoint(ep, r.opts.ClusterDomain)
		if p := r.endpointProblem(ep, reach, ref.SecretName, endpointKey); p != nil {
			return nil, p, nil
		}
		cfg["endpoint"] = ep
		if reach != reachPublic {
			cfg["allow_private_endpoint"] = true
		}
	}
	return cfg, nil, nil
}

// endpointProblem refuses an endpoint DittoFS's guard against server-side request forgery
// exists for: loopback and link-local always (the cloud metadata service lives at
// 169.254.169.254), cluster-internal and private ones unless spec.s3.allowPrivateEndpoint.
func (r *run) endpointProblem(ep string, reach endpointReach, secretName, key string) *specs.Problem {
	host := ep // named by its host only: the URL may carry credentials
	if u, err := url.Parse(ep); err == nil {
		host = u.Host
	}
	switch {
	case reach == reachLocal && !r.opts.LoopbackS3, reach == reachLinkLocal:
		return specs.Problemf(specs.ReasonS3EndpointRefused,
			"the S3 endpoint host %s (Secret %s key %q) is a loopback or link-local address (169.254.169.254 is the cloud metadata service), which is refused; put the S3 service's own address there",
			host, secretName, key)
	case reach != reachPublic && !r.ds.Spec.S3.AllowPrivateEndpoint:
		return specs.Problemf(specs.ReasonS3EndpointRefused,
			"the S3 endpoint host %s (Secret %s key %q) is cluster-internal or on a private network, which DittoFS refuses by default; set spec.s3.allowPrivateEndpoint: true if it is an S3 service you run",
			host, secretName, key)
	}
	return nil
}

func keyOr(k, def string) string {
	if k == "" {
		return def
	}
	return k
}

// endpointReach is where an S3 endpoint's host is, as DittoFS's guard sees it.
type endpointReach int

const (
	reachPublic    endpointReach = iota
	reachPrivate                 // cluster-internal name or private network
	reachLocal                   // loopback, "localhost", unspecified (0.0.0.0, ::)
	reachLinkLocal               // link-local (169.254/16, fe80::/10) or multicast
)

// normalizeEndpoint adds a scheme when missing (http:// for cluster-internal and private
// hosts, https:// otherwise) and says where the host is.
func normalizeEndpoint(ep, clusterDomain string) (string, endpointReach) {
	if !strings.Contains(ep, "://") {
		host := ep
		if i := strings.IndexAny(host, ":/"); i >= 0 {
			host = host[:i]
		}
		if hostReach(host, clusterDomain) != reachPublic {
			ep = "http://" + ep
		} else {
			ep = "https://" + ep
		}
	}
	u, err := url.Parse(ep)
	if err != nil {
		return ep, reachPublic
	}
	return ep, hostReach(u.Hostname(), clusterDomain)
}

func hostReach(host, clusterDomain string) endpointReach {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if ip := net.ParseIP(h); ip != nil {
		switch {
		case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast():
			return reachLinkLocal
		case ip.IsLoopback() || ip.IsUnspecified():
			return reachLocal
		case ip.IsPrivate():
			return reachPrivate
		}
		return reachPublic
	}
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return reachLocal
	case !strings.Contains(h, ".") || strings.HasSuffix(h, ".svc") ||
		strings.HasSuffix(h, ".svc."+clusterDomain) || strings.HasSuffix(h, "."+clusterDomain):
		return reachPrivate
	}
	return reachPublic
}

// storageCondition is a StorageReady condition.
func storageCondition(ok bool, reason, msg string) *metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return &metav1.Condition{Type: specs.ConditionStorageReady, Status: status, Reason: reason, Message: msg}
}

// applyS3 converges the remote store "s3" and reports its status as StorageReady. It returns
// the remote store name the shares should use ("" without spec.s3).
func (r *run) applyS3(ctx context.Context) (string, error) {
	ds := r.ds
	if !specs.S3Configured(ds) {
		return "", nil
	}
	want, problem, err := r.desiredS3(ctx)
	if err != nil {
		return "", err
	}
	if problem != nil {
		r.storage = storageCondition(false, problem.Reason, problem.Message)
		return "", nil
	}
	hash := specs.StoreConfigHash(want)
	store, err := r.api.GetBlockStore(ctx, dittoapi.BlockRemote, specs.S3StoreName)
	updated := false
	switch {
	case dittoapi.IsNotFound(err):
		store, err = r.api.CreateBlockStore(ctx, dittoapi.BlockRemote, specs.S3StoreName, "s3", want)
		if err == nil {
			r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventStoreCreated, "Created remote block store %s (bucket %s)", specs.S3StoreName, ds.Spec.S3.Bucket)
		}
	case err != nil:
		return "", err
	case store.Type != "s3" || !s3Matches(store.ConfigMap(), want) || r.secret.Annotations[specs.AnnotationS3ConfigHash] != hash:
		store, err = r.api.UpdateBlockStore(ctx, dittoapi.BlockRemote, specs.S3StoreName, "s3", want)
		if err == nil {
			updated = true
			r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventStoreUpdated, "Updated remote block store %s from spec.s3 and Secret %s", specs.S3StoreName, ds.Spec.S3.CredentialsSecretRef.SecretName)
		}
	}
	if err != nil {
		if dittoapi.IsTransient(err) || dittoapi.IsAuth(err) {
			return "", err
		}
		// The server rejected the configuration (e.g. an endpoint its SSRF guard refuses).
		r.storage = storageCondition(false, specs.ReasonStoreRejected, fmt.Sprintf("the server rejected remote block store %s: %s", specs.S3StoreName, dittoapi.MessageOf(err)))
		return "", nil
	}
	if r.secret.Annotations[specs.AnnotationS3ConfigHash] != hash {
		ann := map[string]string{specs.AnnotationS3ConfigHash: hash}
		if updated {
			// A new configuration (rotation, spec change): the running shares keep the store
			// DittoFS built at start (v0.29.0). The new time reaches the pod template on the
			// reconcile this write triggers, and restarts the pod. A store only put back after
			// drift needs no restart: the running shares never stopped using our configuration.
			ann[specs.AnnotationRemoteStoreUpdated] = time.Now().UTC().Format(time.RFC3339Nano)
		}
		if err := r.writeSecret(ctx, nil, ann); err != nil {
			return "", err
		}
	}
	msg := fmt.Sprintf("remote block store %s (bucket %s) is %s", specs.S3StoreName, ds.Spec.S3.Bucket, orUnknown(store.Status.Status))
	if store.Status.Message != "" {
		msg += ": " + store.Status.Message
	}
	switch store.Status.Status {
	case "healthy", "degraded":
		r.storage = storageCondition(true, specs.ReasonStoreHealthy, msg)
	default:
		r.storage = storageCondition(false, specs.ReasonStoreUnhealthy, msg)
	}
	return specs.S3StoreName, nil
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
