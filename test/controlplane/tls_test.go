package controlplane

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestAPITLS: by default the operator issues the server's certificate and talks to the real
// dfs over HTTPS, verifying it with its CA; a server presenting a certificate from another CA
// is reported (APICertificateRejected, naming the Secret to fix), not applied; fixed, it
// converges.
func TestAPITLS(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	server(t, ns, "secure", nil)
	issued := &corev1.Secret{}
	testenv.Eventually(t, "the operator's certificate", func() error {
		return k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "secure-api-tls"}, issued)
	})
	d := issued.Data
	be := startBackend(t, ns, "secure", dfstest.WithTLS(d[specs.APITLSCert], d[specs.APITLSKey], d[specs.APITLSCAKey]))
	require.Contains(t, be.dfs.URL, "https://")
	testenv.MarkStatefulSetReady(t, k8s, ns, "secure")
	waitCondition(t, ns, "secure", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied, "https://")
	waitCondition(t, ns, "secure", specs.ConditionReady, metav1.ConditionTrue, "")
	assert.Positive(t, apiCalls(t, "shares", "2xx"), "the operator's calls went through")

	// A server whose certificate comes from a CA the operator was not told about.
	ns2 := newNamespace(t)
	foreign := newDittoServer(ns2, "imposter")
	trusted, other := certificateFor(t, foreign), certificateFor(t, foreign)
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns2, Name: "mine"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{specs.APITLSCert: trusted.cert, specs.APITLSKey: trusted.key, specs.APITLSCAKey: trusted.ca}}))
	startBackend(t, ns2, "imposter", dfstest.WithTLS(other.cert, other.key, other.ca))
	server(t, ns2, "imposter", func(s *v1alpha1.DittoServerSpec) {
		s.ControlPlane = &v1alpha1.ControlPlaneSpec{TLS: &v1alpha1.APITLSSpec{Mode: v1alpha1.APITLSSecret, SecretName: "mine"}}
	})
	testenv.MarkStatefulSetReady(t, k8s, ns2, "imposter")
	waitCondition(t, ns2, "imposter", specs.ConditionControlPlaneReady, metav1.ConditionFalse, specs.ReasonAPICertificateRejected,
		"Secret mine key \"ca.crt\"", "certificate signed by unknown authority", "imposter-api."+ns2+".svc")
	waitCondition(t, ns2, "imposter", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonAPICertificateRejected)

	// The user puts the right CA in the Secret: the next look converges.
	testenv.Eventually(t, "Secret updated", func() error {
		s := &corev1.Secret{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns2, Name: "mine"}, s); err != nil {
			return err
		}
		s.Data[specs.APITLSCAKey] = other.ca
		return k8s.Update(ctx(), s)
	})
	waitCondition(t, ns2, "imposter", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
}

type pemPair struct{ cert, key, ca []byte }

// certificateFor is a certificate for ds's API from a fresh CA.
func certificateFor(t *testing.T, ds *v1alpha1.DittoServer) pemPair {
	t.Helper()
	now := time.Now()
	ca, caKey, err := specs.IssueAPICA(ds, now)
	require.NoError(t, err)
	cert, key, err := specs.IssueAPICertificate(ds, "cluster.local", ca, caKey, now)
	require.NoError(t, err)
	return pemPair{cert: cert, key: key, ca: ca}
}

func newDittoServer(ns, name string) *v1alpha1.DittoServer {
	return &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}
