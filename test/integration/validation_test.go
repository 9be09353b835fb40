package integration

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// rawServer builds a DittoServer from a spec map, so invalid values reach the API server as is.
func rawServer(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(testenv.GVK)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func TestCRDRejectsInvalidSpecs(t *testing.T) {
	ns := newNamespace(t)
	storage := map[string]any{"metadataSize": "1Gi"}
	cases := map[string]struct {
		spec map[string]any
		want []string // substrings of the API server's error
	}{
		"replicas 2": {
			spec: map[string]any{"storage": storage, "replicas": 2},
			want: []string{"spec.replicas", "less than or equal to 1"},
		},
		"share name without a leading slash": {
			spec: map[string]any{"storage": storage, "shares": []any{map[string]any{"name": "export"}}},
			want: []string{"spec.shares[0].name"},
		},
		"share permission unknown": {
			spec: map[string]any{"storage": storage, "shares": []any{map[string]any{"name": "/export", "defaultPermission": "all"}}},
			want: []string{"spec.shares[0].defaultPermission"},
		},
		"snapshot interval under a minute": {
			spec: map[string]any{"storage": storage, "snapshotPolicies": []any{map[string]any{"share": "/export", "interval": "30s"}}},
			want: []string{"spec.snapshotPolicies[].interval must be at least 1m"},
		},
		"snapshot interval unknown shorthand": {
			spec: map[string]any{"storage": storage, "snapshotPolicies": []any{map[string]any{"share": "/export", "interval": "@monthly"}}},
			want: []string{"spec.snapshotPolicies[0].interval"},
		},
		"snapshot ttl under a minute": {
			spec: map[string]any{"storage": storage, "snapshotPolicies": []any{map[string]any{"share": "/export", "interval": "@daily", "ttl": "10s"}}},
			want: []string{"spec.snapshotPolicies[].ttl must be at least 1m"},
		},
		"ldap in plaintext without saying so": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"ldap": ldapSpec("ldap://dc.example.com:389")}},
			want: []string{"spec.identity.ldap.url uses plaintext ldap://", "startTLS: true"},
		},
		"ldap url of another scheme": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"ldap": ldapSpec("https://dc.example.com")}},
			want: []string{"spec.identity.ldap.url"},
		},
		"ldap with a CA and without verification": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"ldap": with(ldapSpec("ldaps://dc.example.com"),
				"insecureSkipVerify", true, "caSecretRef", map[string]any{"name": "ca", "key": "ca.crt"})}},
			want: []string{"insecureSkipVerify and caSecretRef exclude each other"},
		},
		"kerberos principal without a realm": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"kerberos": map[string]any{
				"servicePrincipal": "nfs/files.example.com", "keytabSecretRef": map[string]any{"name": "krb", "key": "krb5.keytab"}}}},
			want: []string{"spec.identity.kerberos.servicePrincipal"},
		},
		"kerberos netbios domain with a dot": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"kerberos": map[string]any{
				"servicePrincipal": "nfs/files.example.com@EXAMPLE.COM", "netbiosDomain": "EXAMPLE.COM",
				"keytabSecretRef": map[string]any{"name": "krb", "key": "krb5.keytab"}}}},
			want: []string{"spec.identity.kerberos.netbiosDomain"},
		},
		"two policies for one share": {
			spec: map[string]any{"storage": storage, "snapshotPolicies": []any{
				map[string]any{"share": "/export", "interval": "@daily"}, map[string]any{"share": "/export", "interval": "@hourly"}}},
			want: []string{"spec.snapshotPolicies[1]", "Duplicate value"},
		},
		"duplicate share": {
			spec: map[string]any{"storage": storage, "shares": []any{map[string]any{"name": "/a"}, map[string]any{"name": "/a"}}},
			want: []string{"spec.shares[1]", "Duplicate"},
		},
		"nfs port out of range": {
			spec: map[string]any{"storage": storage, "nfsPort": 70000},
			want: []string{"spec.nfsPort"},
		},
		"api port 0": {
			spec: map[string]any{"storage": storage, "controlPlane": map[string]any{"port": 0}},
			want: []string{"spec.controlPlane.port"},
		},
		"nfs and api ports clash": {
			spec: map[string]any{"storage": storage, "nfsPort": 8080},
			want: []string{"spec.nfsPort must differ from spec.controlPlane.port"},
		},
		"smb and nfs ports clash": {
			spec: map[string]any{"storage": storage, "nfsPort": 2049, "smb": map[string]any{"enabled": true, "port": 2049}},
			want: []string{"spec.smb.port must differ from spec.nfsPort"},
		},
		"metrics and api ports clash": {
			spec: map[string]any{"storage": storage, "metrics": map[string]any{"enabled": true, "port": 8080}},
			want: []string{"spec.metrics.port must differ from spec.controlPlane.port"},
		},
		"API TLS from a Secret without its name": {
			spec: map[string]any{"storage": storage, "controlPlane": map[string]any{"tls": map[string]any{"mode": "Secret"}}},
			want: []string{"spec.controlPlane.tls.secretName is required with mode Secret"},
		},
		"API TLS secretName without mode Secret": {
			spec: map[string]any{"storage": storage, "controlPlane": map[string]any{"tls": map[string]any{"secretName": "mine"}}},
			want: []string{"spec.controlPlane.tls.secretName is used only with mode Secret"},
		},
		"API TLS mode unknown": {
			spec: map[string]any{"storage": storage, "controlPlane": map[string]any{"tls": map[string]any{"mode": "Auto"}}},
			want: []string{"spec.controlPlane.tls.mode", "Unsupported value"},
		},
		"api port on the NFS adapter port": {
			spec: map[string]any{"storage": storage, "nfsPort": 2049, "controlPlane": map[string]any{"port": 12049}},
			want: []string{"spec.controlPlane.port must not be 12049 or 1445"},
		},
		"bad metadata size": {
			spec: map[string]any{"storage": map[string]any{"metadataSize": "10GB"}},
			want: []string{"spec.storage.metadataSize", "should match"},
		},
		"bad cache size": {
			spec: map[string]any{"storage": map[string]any{"metadataSize": "1Gi", "cacheSize": "lots"}},
			want: []string{"spec.storage.cacheSize"},
		},
		"missing storage": {
			spec: map[string]any{"replicas": 1},
			want: []string{"spec.storage"},
		},
		"sqlite path off the volume": {
			spec: map[string]any{"storage": storage, "database": map[string]any{"sqlite": map[string]any{"path": "/tmp/cp.db"}}},
			want: []string{"spec.database.sqlite.path must be a file under /data/controlplane/"},
		},
		"admin username other than admin": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"admin": map[string]any{"username": "root"}}},
			want: []string{"spec.identity.admin.username must be \"admin\""},
		},
		"backup enabled without bucket and endpoint": {
			spec: map[string]any{"storage": storage, "percona": map[string]any{"enabled": true, "backup": map[string]any{"enabled": true}}},
			want: []string{"spec.percona.backup.bucket is required", "spec.percona.backup.endpoint is required"},
		},
		"percona replicas 6": {
			spec: map[string]any{"storage": storage, "percona": map[string]any{"enabled": true, "replicas": 6}},
			want: []string{"spec.percona.replicas"},
		},
		"bad token duration": {
			spec: map[string]any{"storage": storage, "identity": map[string]any{"jwt": map[string]any{"accessTokenDuration": "15 minutes"}}},
			want: []string{"spec.identity.jwt.accessTokenDuration"},
		},
		"postgres without a source": {
			spec: map[string]any{"storage": storage, "database": map[string]any{"type": "postgres"}},
			want: []string{"spec.database.type is postgres but no PostgreSQL is named"},
		},
		"s3 without a bucket": {
			spec: map[string]any{"storage": storage, "s3": map[string]any{"region": "eu-west-1"}},
			want: []string{"spec.s3.bucket is required"},
		},
		"backup without credentials": {
			spec: map[string]any{"storage": storage, "percona": map[string]any{"enabled": true,
				"backup": map[string]any{"enabled": true, "bucket": "b", "endpoint": "s3.example.com"}}},
			want: []string{"spec.percona.backup.credentialsSecretRef is required"},
		},
		"unknown service type": {
			spec: map[string]any{"storage": storage, "service": map[string]any{"type": "ExternalName"}},
			want: []string{"spec.service.type", "Unsupported value"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := k8s.Create(ctx(), rawServer(ns, "bad", tc.spec))
			require.Error(t, err, "the API server must reject it")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	t.Run("ldap over StartTLS or plaintext on purpose", func(t *testing.T) {
		for i, l := range []map[string]any{
			with(ldapSpec("ldap://dc.example.com:389"), "startTLS", true),
			with(ldapSpec("ldap://dc.example.com:389"), "allowPlaintext", true),
			with(ldapSpec("ldaps://dc.example.com"), "caSecretRef", map[string]any{"name": "ca", "key": "ca.crt"}),
		} {
			require.NoError(t, k8s.Create(ctx(), rawServer(ns, fmt.Sprintf("ok-ldap-%d", i), map[string]any{"storage": storage, "identity": map[string]any{"ldap": l}})))
		}
	})

	t.Run("ports may repeat when the other side is disabled", func(t *testing.T) {
		u := rawServer(ns, "ok-ports", map[string]any{"storage": storage, "nfsPort": 9090,
			"metrics": map[string]any{"enabled": false, "port": 9090}, "smb": map[string]any{"enabled": false, "port": 9090}})
		require.NoError(t, k8s.Create(ctx(), u))
	})
}

// TestCRDDefaultsMatchGo: the API server's defaults (CRD markers) and v1alpha1.Default must agree.
func TestCRDDefaultsMatchGo(t *testing.T) {
	ns := newNamespace(t)
	specs := map[string]map[string]any{
		"minimal": {"storage": map[string]any{"metadataSize": "1Gi"}},
		"every optional block present": {
			"storage":          map[string]any{"metadataSize": "1Gi"},
			"snapshotPolicies": []any{map[string]any{"share": "/export", "interval": "@daily"}},
			"cache":            map[string]any{},
			"smb":              map[string]any{},
			"s3":               map[string]any{"bucket": "b", "credentialsSecretRef": map[string]any{"secretName": "s3"}},
			"percona":          map[string]any{"backup": map[string]any{}},
		},
	}
	i := 0
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			i++
			u := rawServer(ns, "defaults-"+string(rune('a'+i)), spec)
			require.NoError(t, k8s.Create(ctx(), u))
			fromServer := &v1alpha1.DittoServer{}
			require.NoError(t, k8s.Get(ctx(), clientKey(u), fromServer))

			raw, err := json.Marshal(map[string]any{"spec": spec})
			require.NoError(t, err)
			fromGo := &v1alpha1.DittoServer{}
			require.NoError(t, json.Unmarshal(raw, fromGo))
			fromGo.Default()
			assert.Equal(t, fromGo.Spec, fromServer.Spec)
		})
	}
}

func TestDeleteRemovesFinalizersPromptly(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "gone")))
	ds := waitCondition(t, ns, "gone", "ConfigReady", metav1.ConditionTrue, "")
	assert.Contains(t, ds.Finalizers, "dittofs.dittofs.com/finalizer")
	assert.Contains(t, ds.Finalizers, "uninstall-helm-release")
	require.NoError(t, k8s.Delete(ctx(), ds))
	eventually(t, "DittoServer gone (no stuck Terminating)", func() error {
		err := k8s.Get(ctx(), clientKey(ds), &v1alpha1.DittoServer{})
		if err == nil {
			return assert.AnError
		}
		return ignoreNotFound(err)
	})
}

func TestCRDRejectsChangesThatCannotBeHonoured(t *testing.T) {
	ns := newNamespace(t)
	create := func(name string, storage map[string]any) *unstructured.Unstructured {
		u := rawServer(ns, name, map[string]any{"storage": storage})
		require.NoError(t, k8s.Create(ctx(), u))
		return u
	}
	update := func(u *unstructured.Unstructured, storage map[string]any) error {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		require.NoError(t, k8s.Get(ctx(), clientKey(u), cur))
		cur.Object["spec"].(map[string]any)["storage"] = storage
		return k8s.Update(ctx(), cur)
	}
	base := map[string]any{"metadataSize": "10Gi", "cacheSize": "5Gi", "storageClassName": "fast"}
	cases := map[string]struct {
		to   map[string]any
		want string
	}{
		"metadata shrinks":     {map[string]any{"metadataSize": "9Gi", "cacheSize": "5Gi", "storageClassName": "fast"}, "spec.storage.metadataSize cannot decrease"},
		"cache shrinks":        {map[string]any{"metadataSize": "10Gi", "cacheSize": "4096Mi", "storageClassName": "fast"}, "spec.storage.cacheSize cannot decrease"},
		"class changes":        {map[string]any{"metadataSize": "10Gi", "cacheSize": "5Gi", "storageClassName": "slow"}, "spec.storage.storageClassName cannot change"},
		"class removed":        {map[string]any{"metadataSize": "10Gi", "cacheSize": "5Gi"}, "spec.storage.storageClassName cannot change"},
		"content volume added": {map[string]any{"metadataSize": "10Gi", "cacheSize": "5Gi", "storageClassName": "fast", "contentSize": "1Gi"}, "spec.storage.contentSize cannot be added or removed"},
	}
	i := 0
	for name, tc := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			u := create(fmt.Sprintf("imm-%d", i), base)
			err := update(u, tc.to)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("class added", func(t *testing.T) {
		u := create("imm-added", map[string]any{"metadataSize": "10Gi"})
		err := update(u, map[string]any{"metadataSize": "10Gi", "storageClassName": "fast"})
		require.Error(t, err, "a claim template cannot gain a class")
		assert.Contains(t, err.Error(), "spec.storage.storageClassName cannot change")
	})
	t.Run("growing is allowed", func(t *testing.T) {
		u := create("grow", base)
		require.NoError(t, update(u, map[string]any{"metadataSize": "20Gi", "cacheSize": "5Gi", "storageClassName": "fast"}))
	})
}

// TestKerberosCannotBeRemoved: DittoFS keeps its Kerberos settings in its database, so the
// block can be turned off but not dropped.
func TestKerberosCannotBeRemoved(t *testing.T) {
	ns := newNamespace(t)
	krb := map[string]any{"servicePrincipal": "nfs/files.example.com@EXAMPLE.COM", "keytabSecretRef": map[string]any{"name": "krb", "key": "krb5.keytab"}}
	u := rawServer(ns, "krb", map[string]any{"storage": map[string]any{"metadataSize": "1Gi"}, "identity": map[string]any{"kerberos": krb}})
	require.NoError(t, k8s.Create(ctx(), u))
	setIdentity := func(identity map[string]any) error {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(u.GroupVersionKind())
		require.NoError(t, k8s.Get(ctx(), clientKey(u), cur))
		if identity == nil {
			delete(cur.Object["spec"].(map[string]any), "identity")
		} else {
			cur.Object["spec"].(map[string]any)["identity"] = identity
		}
		return k8s.Update(ctx(), cur)
	}
	for name, identity := range map[string]map[string]any{"kerberos removed": {}, "identity removed": nil} {
		err := setIdentity(identity)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), "spec.identity.kerberos cannot be removed", name)
		assert.Contains(t, err.Error(), "enabled: false", name)
	}
	require.NoError(t, setIdentity(map[string]any{"kerberos": with(krb, "enabled", false)}), "turning it off is allowed")
}

// ldapSpec is a minimal spec.identity.ldap with url.
func ldapSpec(url string) map[string]any {
	return map[string]any{"url": url, "baseDN": "dc=example,dc=com", "bindDN": "cn=svc,dc=example,dc=com",
		"bindPasswordSecretRef": map[string]any{"name": "ldap", "key": "password"}}
}

// with is m with the key/value pairs kv set (a copy).
func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}
