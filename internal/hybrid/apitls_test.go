package hybrid

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// TestAPICertificateSecret: mode Operator keeps <name>-api-tls: issued once, untouched while
// valid, renewed with the same CA 30 days before its end, a new CA when the Secret's CA was
// broken out of band (with a warning: clients must trust it again), labels put back; the other
// modes make nothing.
func TestAPICertificateSecret(t *testing.T) {
	r, events := newReconciler(t)
	ns := newNamespace(t)
	ds := newServer(t, ns, "tls")
	key := types.NamespacedName{Namespace: ns, Name: "tls-api-tls"}
	get := func() *corev1.Secret {
		s := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), key, s))
		return s
	}

	renewIn, err := r.ensureAPICertificate(ctx(), ds)
	require.NoError(t, err)
	assert.InDelta(t, (specs.APICertValidity - specs.APICertRenewBefore).Hours(), renewIn.Hours(), 1, "looks again when renewal is due")
	first := get()
	assert.Empty(t, drain(events), "an object of the server's own: no event")

	_, err = r.ensureAPICertificate(ctx(), ds)
	require.NoError(t, err)
	assert.Equal(t, first.ResourceVersion, get().ResourceVersion, "a valid certificate is left alone")
	assert.Empty(t, drain(events))

	// Eleven months later (a certificate issued 340 days ago): renewed, same CA.
	old, oldKey, err := specs.IssueAPICertificate(ds, "cluster.local", first.Data[specs.APITLSCAKey], first.Data[specs.APITLSCAKeyPK], time.Now().Add(-340*24*time.Hour))
	require.NoError(t, err)
	aged := first.DeepCopy()
	aged.Data[specs.APITLSCert], aged.Data[specs.APITLSKey] = old, oldKey
	require.NoError(t, k8s.Update(ctx(), aged))
	_, err = r.ensureAPICertificate(ctx(), getServerIn(t, ns, "tls"))
	require.NoError(t, err)
	renewed := get()
	assert.NotEqual(t, old, renewed.Data[specs.APITLSCert], "a new certificate")
	assert.Equal(t, first.Data[specs.APITLSCAKey], renewed.Data[specs.APITLSCAKey], "the CA clients trust stays")
	due, _ := specs.APICertificateRenewal(ds, "cluster.local", renewed.Data, time.Now())
	assert.False(t, due)
	assert.Contains(t, strings.Join(drain(events), "\n"), "APICertificateRenewed")

	// The CA's key edited out of band: a new CA, said loudly.
	broken := renewed.DeepCopy()
	broken.Data[specs.APITLSCAKeyPK] = []byte("not a key")
	delete(broken.Labels, specs.LabelInstance)
	require.NoError(t, k8s.Update(ctx(), broken))
	_, err = r.ensureAPICertificate(ctx(), ds)
	require.NoError(t, err)
	fixed := get()
	assert.True(t, specs.ValidAPICA(fixed.Data))
	assert.NotEqual(t, first.Data[specs.APITLSCAKey], fixed.Data[specs.APITLSCAKey], "a new CA")
	assert.Equal(t, "tls", fixed.Labels[specs.LabelInstance], "labels put back")
	assert.Contains(t, strings.Join(drain(events), "\n"), "clients must trust its new ca.crt")

	for _, mode := range []v1alpha1.APITLSMode{v1alpha1.APITLSSecret, v1alpha1.APITLSDisabled} {
		other := newServer(t, ns, "plain-"+strings.ToLower(string(mode)), func(s *v1alpha1.DittoServerSpec) {
			s.ControlPlane = &v1alpha1.ControlPlaneSpec{TLS: &v1alpha1.APITLSSpec{Mode: mode}}
			if mode == v1alpha1.APITLSSecret {
				s.ControlPlane.TLS.SecretName = "mine"
			}
		})
		renewIn, err := r.ensureAPICertificate(ctx(), other)
		require.NoError(t, err)
		assert.Zero(t, renewIn)
		err = k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: other.Name + "-api-tls"}, &corev1.Secret{})
		assert.True(t, apierrors.IsNotFound(err), "%s: nothing issued", mode)
	}
}

func getServerIn(t *testing.T, ns, name string) *v1alpha1.DittoServer {
	t.Helper()
	ds := &v1alpha1.DittoServer{}
	require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, ds))
	return ds
}
