package specs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

func kerberosSpec(mutate func(*v1alpha1.KerberosSpec)) *v1alpha1.KerberosSpec {
	k := &v1alpha1.KerberosSpec{
		ServicePrincipal: "nfs/files.example.com@EXAMPLE.COM",
		KeytabSecretRef:  corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "krb"}, Key: "nfs.keytab"},
	}
	if mutate != nil {
		mutate(k)
	}
	return k
}

// TestKerberosDefaults: the settings are resolved as DittoFS v0.29.0 resolves them at boot, so
// what the operator compares with the server's stored settings matches a seeded server.
func TestKerberosDefaults(t *testing.T) {
	cases := map[string]struct {
		spec *v1alpha1.KerberosSpec
		want KerberosSettings
	}{
		"principal only": {
			spec: kerberosSpec(nil),
			want: KerberosSettings{Enabled: true, KeytabPath: "/var/run/dittofs/kerberos/krb5.keytab", Krb5Conf: "/var/run/dittofs/kerberos/krb5.conf", ServicePrincipal: "nfs/files.example.com@EXAMPLE.COM",
				Realm: "EXAMPLE.COM", DNSDomain: "example.com", MaxClockSkew: 5 * time.Minute, ContextTTL: 8 * time.Hour, MaxContexts: 10000},
		},
		"everything set, off": {
			spec: kerberosSpec(func(k *v1alpha1.KerberosSpec) {
				k.Enabled = ptr.To(false)
				k.Krb5ConfKey = "site-krb5.conf"
				k.Realm, k.NetBIOSDomain, k.DNSDomain = "CORP.EXAMPLE.COM", "CORP", "corp.example.com"
				k.MaxClockSkew, k.ContextTTL, k.MaxContexts = "90s", "1h30m", 50
			}),
			want: KerberosSettings{Enabled: false, KeytabPath: "/var/run/dittofs/kerberos/krb5.keytab", Krb5Conf: "/var/run/dittofs/kerberos/krb5.conf",
				ServicePrincipal: "nfs/files.example.com@EXAMPLE.COM", Realm: "CORP.EXAMPLE.COM", NetBIOS: "CORP", DNSDomain: "corp.example.com",
				MaxClockSkew: 90 * time.Second, ContextTTL: 90 * time.Minute, MaxContexts: 50},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Kerberos(tc.spec))
		})
	}
}

// TestHashedConfig: the Kerberos policy stays out of the config hash (a change is applied
// through the API and restarts the pod once), the file paths stay in, and a config without
// Kerberos hashes byte for byte as before.
func TestHashedConfig(t *testing.T) {
	plain := renderYAML(t, server(nil))
	got, err := HashedConfig(plain)
	require.NoError(t, err)
	assert.Equal(t, plain, got, "no kerberos block: unchanged")

	withKrb := func(mutate func(*v1alpha1.KerberosSpec)) string {
		cfg, err := HashedConfig(renderYAML(t, server(func(s *v1alpha1.DittoServerSpec) {
			s.Identity = &v1alpha1.IdentitySpec{Kerberos: kerberosSpec(mutate)}
		})))
		require.NoError(t, err)
		return cfg
	}
	base := withKrb(nil)
	assert.Contains(t, base, "keytab_path: /var/run/dittofs/kerberos/krb5.keytab")
	assert.NotContains(t, base, "service_principal")
	assert.NotEqual(t, plain, base, "adding Kerberos mounts the keytab: the pod restarts")
	assert.Equal(t, base, withKrb(func(k *v1alpha1.KerberosSpec) {
		k.ServicePrincipal, k.Realm, k.Enabled, k.MaxContexts = "cifs/other@EXAMPLE.COM", "EXAMPLE.COM", ptr.To(false), 5
	}), "policy changes do not change the hash")
	assert.Contains(t, base, "krb5_conf: /var/run/dittofs/kerberos/krb5.conf", "file paths are hashed")
}

func renderYAML(t *testing.T, ds *v1alpha1.DittoServer) string {
	t.Helper()
	r, err := testRenderer(t).Render(ds)
	require.NoError(t, err)
	out, err := r.ConfigYAML()
	require.NoError(t, err)
	return out
}

// TestIdentityFiles: the keytab and the directory's CA reach the pod as files, the keytab
// readable by the pod's group only, and no identity secret as env.
func TestIdentityFiles(t *testing.T) {
	ds := server(func(s *v1alpha1.DittoServerSpec) {
		s.Identity = &v1alpha1.IdentitySpec{
			Kerberos: kerberosSpec(nil),
			LDAP: &v1alpha1.LDAPSpec{URL: "ldaps://dc.example.com", BaseDN: "dc=example,dc=com", BindDN: "cn=svc,dc=example,dc=com",
				BindPasswordSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "ldap"}, Key: "password"},
				CASecretRef:           &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "ldap-ca"}, Key: "root.pem"}},
		}
	})
	assert.Subset(t, ReferencedSecretNames(ds), []string{"ldap", "ldap-ca", "krb"}, "a change of any of them reconciles the server")
	sts := DesiredStatefulSet(ds, StatefulSetInputs{Image: "img", ConfigHash: "h", KerberosUpdated: "2026-12-06T00:00:00Z"})
	pod := sts.Spec.Template.Spec
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	krb := vols["kerberos"].Secret
	require.NotNil(t, krb)
	assert.Equal(t, "krb", krb.SecretName)
	assert.Equal(t, []corev1.KeyToPath{{Key: "nfs.keytab", Path: "krb5.keytab"}, {Key: "krb5.conf", Path: "krb5.conf"}}, krb.Items)
	assert.Equal(t, int32(0o440), *krb.DefaultMode)
	assert.True(t, *krb.Optional, "turning Kerberos off must not need the Secret")
	ca := vols["ldap-ca"].Secret
	require.NotNil(t, ca)
	assert.Equal(t, []corev1.KeyToPath{{Key: "root.pem", Path: "ca.crt"}}, ca.Items)
	c := pod.Containers[0]
	assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "kerberos", MountPath: "/var/run/dittofs/kerberos", ReadOnly: true})
	assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "ldap-ca", MountPath: "/var/run/dittofs/ldap-ca", ReadOnly: true})
	for _, e := range c.Env {
		assert.NotEqual(t, "ldap", secretOf(e), "the bind password goes through the API, not the pod")
	}
	assert.Equal(t, "2026-12-06T00:00:00Z", sts.Spec.Template.Annotations[AnnotationKerberosUpdated], "a Kerberos change applied through the API restarts the pod")
	assert.NotContains(t, DesiredStatefulSet(ds, StatefulSetInputs{Image: "img", ConfigHash: "h"}).Spec.Template.Annotations, AnnotationKerberosUpdated)
}

func secretOf(e corev1.EnvVar) string {
	if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		return e.ValueFrom.SecretKeyRef.Name
	}
	return ""
}
