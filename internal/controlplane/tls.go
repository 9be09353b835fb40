package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// tlsClient is the HTTP client of one server whose API serves TLS, and what it was built from.
type tlsClient struct {
	key    [sha256.Size]byte
	client *http.Client
}

// httpClient is the client the operator talks to ds's API with. With TLS it trusts the ca.crt
// of the server's certificate Secret (the operator's CA, or the one of the user's Secret; the
// system's roots when that Secret has none) and verifies the certificate names
// <name>-api.<namespace>.svc, whatever address it dials. A client is kept per server while its
// CA and name stay the same, so connections are reused.
func (s *Step) httpClient(ctx context.Context, ds *v1alpha1.DittoServer) (*http.Client, error) {
	name := specs.APITLSSecretName(ds)
	if name == "" {
		return s.plain, nil
	}
	secret := &corev1.Secret{}
	if err := s.deps.Secrets.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, secret); err != nil {
		return nil, &k8sError{fmt.Errorf("reading the API certificate's Secret %s/%s: %w", ds.Namespace, name, err)}
	}
	ca := secret.Data[specs.APITLSCAKey]
	serverName := specs.APIServerName(ds)
	key := sha256.Sum256(append(append([]byte(serverName), 0), ca...))
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.tlsClients[ds.UID]; ok && c.key == key {
		return c.client, nil
	}
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if len(ca) > 0 {
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(ca) {
			return nil, specs.Problemf(specs.ReasonSecretInvalid,
				"Secret %s key %q (spec.controlPlane.tls) holds no PEM certificate; it must be the CA of the API's certificate, or absent to trust the system's roots", name, specs.APITLSCAKey)
		}
	}
	tr, err := withTLS(s.opts.HTTPClient.Transport, cfg)
	if err != nil {
		return nil, err
	}
	hc := *s.opts.HTTPClient
	hc.Transport = tr
	c := withMetrics(&hc)
	s.tlsClients[ds.UID] = tlsClient{key: key, client: c}
	return c, nil
}

// TLSConfigurable is a RoundTripper that wraps another and can make a copy of itself whose
// connections use a TLS configuration (e.g. a test's request counter).
type TLSConfigurable interface {
	WithTLSConfig(*tls.Config) http.RoundTripper
}

// withTLS is a copy of rt whose connections use cfg.
func withTLS(rt http.RoundTripper, cfg *tls.Config) (http.RoundTripper, error) {
	switch t := rt.(type) {
	case nil:
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		return tr, nil
	case *http.Transport:
		tr := t.Clone()
		tr.TLSClientConfig = cfg
		return tr, nil
	case TLSConfigurable:
		return t.WithTLSConfig(cfg), nil
	}
	return nil, errors.New("the control-plane HTTP client's transport is neither an *http.Transport nor TLSConfigurable: it cannot carry a server's TLS settings")
}

// certificateRejected reports whether a call failed because the server's certificate did not
// verify (unknown CA, another name, expired), as opposed to no answer at all.
func certificateRejected(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
