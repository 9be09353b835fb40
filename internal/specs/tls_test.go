package specs

import (
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

func tlsServer(mode v1alpha1.APITLSMode, secret string) *v1alpha1.DittoServer {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: "team"}}
	ds.Spec.Storage.MetadataSize = "1Gi"
	if mode != "" {
		ds.Spec.ControlPlane = &v1alpha1.ControlPlaneSpec{TLS: &v1alpha1.APITLSSpec{Mode: mode, SecretName: secret}}
	}
	return ds
}

// TestAPICertificate: the operator's CA signs a serving certificate a client verifies under
// every name it uses for the API (the -api Service's DNS names, localhost for a port-forward),
// and not under another.
func TestAPICertificate(t *testing.T) {
	ds := tlsServer("", "")
	now := time.Now()
	caPEM, caKey, err := IssueAPICA(ds, now)
	require.NoError(t, err)
	certPEM, keyPEM, err := IssueAPICertificate(ds, "cluster.local", caPEM, caKey, now)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	for _, name := range []string{"files-api", "files-api.team", "files-api.team.svc", "files-api.team.svc.cluster.local", "localhost", "127.0.0.1"} {
		_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: now})
		assert.NoError(t, err, name)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other-api.team.svc", CurrentTime: now})
	assert.Error(t, err, "another server's name")
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "files-api.team.svc", CurrentTime: now.Add(APICertValidity + time.Hour)})
	assert.Error(t, err, "expired after a year")

	data := map[string][]byte{APITLSCAKey: caPEM, APITLSCAKeyPK: caKey, APITLSCert: certPEM, APITLSKey: keyPEM}
	renew, at := APICertificateRenewal(ds, "cluster.local", data, now)
	assert.False(t, renew, "a fresh certificate")
	assert.WithinDuration(t, cert.NotAfter.Add(-APICertRenewBefore), at, time.Second)
	renew, _ = APICertificateRenewal(ds, "cluster.local", data, at)
	assert.True(t, renew, "30 days before it ends")
	renew, _ = APICertificateRenewal(ds, "example.org", data, now)
	assert.True(t, renew, "another cluster domain: other names")
	otherCA, otherKey, err := IssueAPICA(ds, now)
	require.NoError(t, err)
	renew, _ = APICertificateRenewal(ds, "cluster.local", map[string][]byte{APITLSCAKey: otherCA, APITLSCAKeyPK: otherKey, APITLSCert: certPEM, APITLSKey: keyPEM}, now)
	assert.True(t, renew, "not signed by the Secret's CA")
	renew, _ = APICertificateRenewal(ds, "cluster.local", map[string][]byte{APITLSCAKey: caPEM, APITLSCAKeyPK: caKey, APITLSCert: certPEM, APITLSKey: otherKey}, now)
	assert.True(t, renew, "a key that does not match")
	assert.True(t, ValidAPICA(data))
	assert.False(t, ValidAPICA(map[string][]byte{APITLSCAKey: certPEM, APITLSCAKeyPK: keyPEM}), "a serving certificate is no CA")
}

// TestAPITLSInThePod: each mode's certificate reaches the pod (serving pair only), the config
// and the probes' scheme; Disabled serves plain HTTP.
func TestAPITLSInThePod(t *testing.T) {
	cases := map[string]struct {
		ds     *v1alpha1.DittoServer
		secret string
	}{
		"default":  {tlsServer("", ""), "files-api-tls"},
		"operator": {tlsServer(v1alpha1.APITLSOperator, ""), "files-api-tls"},
		"secret":   {tlsServer(v1alpha1.APITLSSecret, "from-cert-manager"), "from-cert-manager"},
		"disabled": {tlsServer(v1alpha1.APITLSDisabled, ""), ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			sts := DesiredStatefulSet(tc.ds, StatefulSetInputs{Image: "img"})
			pod := sts.Spec.Template.Spec
			c := pod.Containers[0]
			var vol *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == VolumeAPITLS {
					vol = &pod.Volumes[i]
				}
			}
			cfg := renderConfig(t, tc.ds)["controlplane"].(map[string]any)
			if tc.secret == "" {
				assert.Nil(t, vol)
				assert.NotContains(t, cfg, "tls")
				assert.Equal(t, corev1.URISchemeHTTP, c.ReadinessProbe.HTTPGet.Scheme)
				assert.Equal(t, "http", APIScheme(tc.ds))
				return
			}
			require.NotNil(t, vol)
			assert.Equal(t, tc.secret, vol.Secret.SecretName)
			assert.Equal(t, []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}, vol.Secret.Items, "never the CA's key")
			assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: VolumeAPITLS, MountPath: "/var/run/dittofs/api-tls", ReadOnly: true})
			assert.Equal(t, map[string]any{"cert_file": "/var/run/dittofs/api-tls/tls.crt", "key_file": "/var/run/dittofs/api-tls/tls.key"}, cfg["tls"])
			for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
				assert.Equal(t, corev1.URISchemeHTTPS, p.HTTPGet.Scheme)
			}
			assert.Equal(t, "https", APIScheme(tc.ds))
		})
	}
}
