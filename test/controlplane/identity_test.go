package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"github.com/jimlambrt/gldap/testdirectory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

const bindDN = "cn=svc-dittofs,ou=people,dc=example,dc=org"

// directory starts an LDAPS directory (gldap's test directory, TLS from its own CA) on
// 127.0.0.1 whose only account is bindDN with password.
func directory(t *testing.T, password string) *testdirectory.Directory {
	t.Helper()
	td := testdirectory.Start(t, testdirectory.WithHost(t, "127.0.0.1"), testdirectory.WithLogger(t, hclog.NewNullLogger()))
	td.SetUsers(gldap.NewEntry(bindDN, map[string][]string{"cn": {"svc-dittofs"}, "password": {password}}))
	return td
}

func secretRef(name, key string) corev1.SecretKeySelector {
	return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func setSecret(t *testing.T, ns, name string, data map[string][]byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Get(ctx(), client.ObjectKeyFromObject(s), s); err == nil {
		s.Data = data
		require.NoError(t, k8s.Update(ctx(), s))
		return
	}
	s.Data = data
	require.NoError(t, k8s.Create(ctx(), s))
}

// bindsWithStoredPassword asks the real dfs to dial and bind with the configuration it stored
// (an empty password means the stored one): true only if the operator delivered the URL, the
// CA file and the password the directory accepts.
func bindsWithStoredPassword(admin *dittoapi.Client) error {
	cfg, err := admin.GetLDAPConfig(ctx())
	if err != nil {
		return err
	}
	cfg.BindPassword = ""
	res, err := admin.TestLDAP(ctx(), *cfg)
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("stage %s: %s", res.Stage, res.Message)
	}
	return nil
}

func putCount(url, path string) int {
	calls.mu.Lock()
	defer calls.mu.Unlock()
	return calls.m[strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")+" PUT "+path]
}

// TestLDAP: spec.identity.ldap reaches the real dfs through the API and the dfs binds to a real
// LDAPS directory with it (CA from a Secret, password from another); steady state is one read,
// no restart; a new password in the Secret and drift made with the API are put back; removing
// the field disables the directory the operator configured, and one configured by other means
// is never touched.
func TestLDAP(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	td := directory(t, "first-password")
	be := startBackend(t, ns, "files")
	// The kubelet's part: the CA Secret's key as a file where the pod mounts it.
	caFile := filepath.Join(be.dfs.Dir, "pod", specs.LDAPCAFile)
	require.NoError(t, os.MkdirAll(filepath.Dir(caFile), 0o755))
	require.NoError(t, os.WriteFile(caFile, []byte(td.Cert()), 0o644))
	setSecret(t, ns, "ldap-bind", map[string][]byte{"password": []byte("first-password")})
	setSecret(t, ns, "ldap-ca", map[string][]byte{"ca.crt": []byte(td.Cert())})

	url := fmt.Sprintf("ldaps://127.0.0.1:%d", td.Port())
	server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) {
		s.Identity.LDAP = &v1alpha1.LDAPSpec{URL: url, BaseDN: "dc=example,dc=org", BindDN: bindDN,
			BindPasswordSecretRef: secretRef("ldap-bind", "password"), CASecretRef: ptr.To(secretRef("ldap-ca", "ca.crt")),
			UserAttr: "uid", Timeout: "5s", NestedGroups: true}
	})
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	hash := configHashOf(t, ns)
	admin := be.dfs.Admin(t)

	cfg, err := admin.GetLDAPConfig(ctx())
	require.NoError(t, err)
	assert.True(t, cfg.Enabled)
	assert.Equal(t, url, cfg.URL)
	assert.Equal(t, "uid", cfg.UserAttr)
	assert.Equal(t, "rfc2307", cfg.Idmap, "DittoFS's default")
	assert.Equal(t, caFile, cfg.TLS.CACertFile)
	assert.Equal(t, dittoapi.RedactedSecret, cfg.BindPassword, "a password is stored")
	require.NoError(t, bindsWithStoredPassword(admin), "the dfs binds to the directory over LDAPS with the operator's settings")
	testenv.Eventually(t, "one LDAPApplied event", func() error {
		if n := len(testenv.Events(t, k8s, ns, "files", specs.EventLDAPApplied)); n != 1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})

	// Steady state: a reconcile reads the configuration once and writes nothing.
	calls.reset(be.dfs.URL)
	poke(t, ns, "ldap-bind")
	_, writes, detail := quiesce(t, be.dfs.URL)
	assert.Equal(t, 0, writes, detail)
	assert.Contains(t, detail, "GET /api/v1/identity-providers/ldap/config ×1", detail)

	// The password is rotated in the directory and then in the Secret: sent, no restart.
	td.SetUsers(gldap.NewEntry(bindDN, map[string][]string{"cn": {"svc-dittofs"}, "password": {"second-password"}}))
	require.Error(t, bindsWithStoredPassword(admin), "the old password no longer binds")
	setSecret(t, ns, "ldap-bind", map[string][]byte{"password": []byte("second-password")})
	testenv.Eventually(t, "the dfs binds with the new password", func() error { return bindsWithStoredPassword(admin) })
	assert.Equal(t, hash, configHashOf(t, ns), "no restart")

	// Drift: someone points the server elsewhere with the API; the operator puts the spec back.
	cfg.BaseDN, cfg.BindPassword = "dc=elsewhere", ""
	_, err = admin.PutLDAPConfig(ctx(), *cfg)
	require.NoError(t, err)
	poke(t, ns, "ldap-bind")
	testenv.Eventually(t, "drift restored", func() error {
		cur, err := admin.GetLDAPConfig(ctx())
		if err != nil {
			return err
		}
		if cur.BaseDN != "dc=example,dc=org" {
			return fmt.Errorf("base DN %s", cur.BaseDN)
		}
		return nil
	})
	require.NoError(t, bindsWithStoredPassword(admin), "the password survived the drift")

	// Removed from the spec: disabled, its settings kept on the server.
	testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.Identity.LDAP = nil })
	testenv.Eventually(t, "the directory disabled", func() error {
		cur, err := admin.GetLDAPConfig(ctx())
		if err != nil {
			return err
		}
		if cur.Enabled {
			return fmt.Errorf("still enabled")
		}
		return nil
	})
	markReady(t, ns, "files") // the CA volume left the pod template

	// A directory configured by other means (dfsctl) while the spec has none: left alone.
	cfg.Enabled, cfg.BaseDN = true, "dc=by-hand"
	_, err = admin.PutLDAPConfig(ctx(), *cfg)
	require.NoError(t, err)
	calls.reset(be.dfs.URL)
	poke(t, ns, "admin")
	_, _, detail = quiesce(t, be.dfs.URL)
	assert.NotContains(t, detail, "identity-providers", "a server whose spec never had LDAP since: no call about it")
	cur, err := admin.GetLDAPConfig(ctx())
	require.NoError(t, err)
	assert.True(t, cur.Enabled)
	assert.Equal(t, "dc=by-hand", cur.BaseDN)
}

// TestLDAPEmptyPassword: an empty bind password (DittoFS would try an anonymous bind) is
// reported with the Secret and field to fix, and not sent.
func TestLDAPEmptyPassword(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files")
	setSecret(t, ns, "ldap-bind", map[string][]byte{"password": {}})
	server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) {
		s.Identity.LDAP = &v1alpha1.LDAPSpec{URL: "ldaps://127.0.0.1:1", BaseDN: "dc=example,dc=org", BindDN: bindDN,
			BindPasswordSecretRef: secretRef("ldap-bind", "password")}
	})
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonSecretInvalid,
		"Secret ldap-bind key \"password\" (spec.identity.ldap.bindPasswordSecretRef) is empty", bindDN)
	_, err := be.dfs.Admin(t).GetLDAPConfig(ctx())
	assert.True(t, dittoapi.IsNotFound(err), "nothing sent: %v", err)
}

// TestKerberos: the real dfs boots with the operator's kerberos block and keytab (it seeds its
// database from them) and the operator leaves it alone; a principal change, which DittoFS would
// ignore from the file once seeded, is put through the API and restarts the pod once (the
// config hash does not move), after which the restarted dfs serves the new principal and the
// operator stays quiet.
func TestKerberos(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	first, second := "nfs/files.example.com@EXAMPLE.COM", "nfs/files2.example.com@EXAMPLE.COM"
	keytabBytes := dfstest.Keytab(t, first, second)
	setSecret(t, ns, "krb", map[string][]byte{"nfs.keytab": keytabBytes, "krb5.conf": []byte(dfstest.Krb5Conf)})
	spec := &v1alpha1.KerberosSpec{ServicePrincipal: first, KeytabSecretRef: secretRef("krb", "nfs.keytab"), NetBIOSDomain: "EXAMPLE"}
	be := startBackend(t, ns, "files", dfstest.WithSetup(dfstestSetupKerberos(t, spec, keytabBytes)))
	server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) { s.Identity.Kerberos = spec })
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	admin := be.dfs.Admin(t)
	cur, err := admin.GetKerberosConfig(ctx())
	require.NoError(t, err, "the dfs seeded its database from the config file")
	assert.Equal(t, first, cur.ServicePrincipal)
	assert.Equal(t, "EXAMPLE.COM", cur.Realm, "derived from the principal")
	assert.Equal(t, "EXAMPLE", cur.NetBIOSDomain)
	path := "/api/v1/identity-providers/kerberos/config"
	assert.Zero(t, putCount(be.dfs.URL, path), "a seeded server matches the spec: nothing put")
	sts := testenv.GetStatefulSet(t, k8s, ns, "files")
	assert.NotContains(t, sts.Spec.Template.Annotations, specs.AnnotationKerberosUpdated, "no restart")
	hash := configHashOf(t, ns)

	testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.Identity.Kerberos.ServicePrincipal = second })
	var stamp string
	testenv.Eventually(t, "the pod template carries the restart", func() error {
		stamp = testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationKerberosUpdated]
		if stamp == "" {
			return fmt.Errorf("no %s", specs.AnnotationKerberosUpdated)
		}
		return nil
	})
	assert.Equal(t, hash, configHashOf(t, ns), "the config hash does not move: one restart, not two")
	assert.Equal(t, 1, putCount(be.dfs.URL, path))
	cur, err = admin.GetKerberosConfig(ctx())
	require.NoError(t, err)
	assert.Equal(t, second, cur.ServicePrincipal)

	// The StatefulSet controller's part: the pod restarts, on the stored settings.
	be.dfs.Restart(t)
	cur, err = be.dfs.Admin(t).GetKerberosConfig(ctx())
	require.NoError(t, err, "the restarted dfs boots with the stored settings and the mounted keytab")
	assert.Equal(t, second, cur.ServicePrincipal, "the database wins over the file's first principal")
	markReady(t, ns, "files")
	calls.reset(be.dfs.URL)
	poke(t, ns, "krb")
	_, writes, detail := quiesce(t, be.dfs.URL)
	assert.Equal(t, 0, writes, "settled: %s", detail)
	assert.Equal(t, stamp, testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationKerberosUpdated], "no second restart")
	testenv.Eventually(t, "one KerberosApplied event", func() error {
		if n := len(testenv.Events(t, k8s, ns, "files", specs.EventKerberosApplied)); n != 1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})

	// A new keytab in the Secret restarts the pod through the config hash.
	setSecret(t, ns, "krb", map[string][]byte{"nfs.keytab": dfstest.Keytab(t, second), "krb5.conf": []byte(dfstest.Krb5Conf)})
	testenv.Eventually(t, "a new config hash", func() error {
		if configHashOf(t, ns) == hash {
			return fmt.Errorf("unchanged")
		}
		return nil
	})
}

// dfstestSetupKerberos writes the keytab where the pod mounts it and the kerberos block the
// chart renders (paths mapped into the test's pod directory).
func dfstestSetupKerberos(t *testing.T, k *v1alpha1.KerberosSpec, keytabBytes []byte) func(string) string {
	return func(dir string) string {
		file, conf := filepath.Join(dir, "pod", specs.KerberosKeytabFile), filepath.Join(dir, "pod", specs.KerberosKrb5Conf)
		require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
		require.NoError(t, os.WriteFile(file, keytabBytes, 0o600))
		require.NoError(t, os.WriteFile(conf, []byte(dfstest.Krb5Conf), 0o600))
		block := specs.KerberosConfig(k)
		block["keytab_path"], block["krb5_conf"] = file, conf
		out, err := yaml.Marshal(map[string]any{"kerberos": block})
		require.NoError(t, err)
		return string(out)
	}
}

// TestKerberosTurnedOn: a server that booted with Kerberos off stored nothing (DittoFS seeds only
// an enabled block); turning it on is put through the API and restarts the pod once, and turning
// it off again likewise.
func TestKerberosTurnedOn(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	principal := "nfs/files.example.com@EXAMPLE.COM"
	keytabBytes := dfstest.Keytab(t, principal)
	setSecret(t, ns, "krb", map[string][]byte{"nfs.keytab": keytabBytes, "krb5.conf": []byte(dfstest.Krb5Conf)})
	spec := &v1alpha1.KerberosSpec{Enabled: ptr.To(false), ServicePrincipal: principal, KeytabSecretRef: secretRef("krb", "nfs.keytab")}
	be := startBackend(t, ns, "files", dfstest.WithSetup(dfstestSetupKerberos(t, spec, keytabBytes)))
	server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) { s.Identity.Kerberos = spec })
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	admin := be.dfs.Admin(t)
	_, err := admin.GetKerberosConfig(ctx())
	require.True(t, dittoapi.IsNotFound(err), "a disabled block seeds nothing: %v", err)
	hash := configHashOf(t, ns)

	stampAfter := func(prev string) string {
		var stamp string
		testenv.Eventually(t, "a restart stamp on the pod template", func() error {
			stamp = testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationKerberosUpdated]
			if stamp == "" || stamp == prev {
				return fmt.Errorf("stamp %q", stamp)
			}
			return nil
		})
		return stamp
	}
	testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.Identity.Kerberos.Enabled = ptr.To(true) })
	first := stampAfter("")
	cur, err := admin.GetKerberosConfig(ctx())
	require.NoError(t, err)
	assert.True(t, cur.Enabled)
	assert.Equal(t, principal, cur.ServicePrincipal)
	assert.Equal(t, hash, configHashOf(t, ns), "one restart: the config hash does not move")
	markReady(t, ns, "files")

	testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.Identity.Kerberos.Enabled = ptr.To(false) })
	stampAfter(first)
	cur, err = admin.GetKerberosConfig(ctx())
	require.NoError(t, err)
	assert.False(t, cur.Enabled, "turned off in the stored settings the next boot reads")
	assert.Equal(t, 2, putCount(be.dfs.URL, "/api/v1/identity-providers/kerberos/config"))
}
