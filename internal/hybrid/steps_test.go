package hybrid

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
)

func TestLowestNonZeroResult(t *testing.T) {
	assert.Equal(t, ctrl.Result{}, lowestNonZeroResult())
	assert.Equal(t, ctrl.Result{}, lowestNonZeroResult(ctrl.Result{}, ctrl.Result{}))
	assert.Equal(t, ctrl.Result{RequeueAfter: time.Second},
		lowestNonZeroResult(ctrl.Result{RequeueAfter: time.Minute}, ctrl.Result{}, ctrl.Result{RequeueAfter: time.Second}),
		"the soonest requeue wins; a step without one does not cancel the others")
}

// userSecrets creates valid JWT and admin Secrets and returns the spec that references them.
func userSecrets(t *testing.T, ns string) func(*v1alpha1.DittoServerSpec) {
	newSecret(t, ns, "jwt", map[string]string{"secret": strings.Repeat("j", 40)})
	newSecret(t, ns, "admin", map[string]string{"password": "pw"})
	return func(s *v1alpha1.DittoServerSpec) {
		s.Identity = &v1alpha1.IdentitySpec{
			JWT:   &v1alpha1.JWTSpec{SecretRef: secretRef("jwt", "secret")},
			Admin: &v1alpha1.AdminSpec{PasswordSecretRef: secretRef("admin", "password")},
		}
	}
}

func secretRef(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

func TestValidateSpecStep(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)

	ds := newServer(t, ns, "bad", func(s *v1alpha1.DittoServerSpec) { s.Storage.StorageClassName = ptr.To("no-such-class") })
	s := &scope{ds: ds, status: newObserved(ds)}
	res, next, err := r.validateSpec(ctx(), s)
	require.NoError(t, err)
	assert.False(t, next, "an invalid spec is not rolled out")
	assert.Equal(t, invalidSpecRecheck, res.RequeueAfter, "re-checked: no watch may fix it")
	assert.True(t, s.status.config.broken)
	assert.Equal(t, specs.ReasonInvalidSpec, s.status.config.reason)
	assert.Contains(t, s.status.config.message, `spec.storage.storageClassName: StorageClass "no-such-class" does not exist`)

	ds = newServer(t, ns, "percona", func(s *v1alpha1.DittoServerSpec) { s.Percona = &v1alpha1.PerconaSpec{Enabled: true} })
	s = &scope{ds: ds, status: newObserved(ds)}
	_, next, err = r.validateSpec(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next, "a missing Percona CRD alone is waited for by the database step")
	assert.True(t, s.findings.PerconaCRDMissing)

	ds = newServer(t, ns, "warned", func(s *v1alpha1.DittoServerSpec) { s.Cache = &v1alpha1.CacheSpec{} })
	s = &scope{ds: ds, status: newObserved(ds)}
	_, next, err = r.validateSpec(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next, "warnings do not block")
	require.Len(t, s.status.warnings, 1)
	assert.Contains(t, s.status.warnings[0], "spec.cache has no effect")
}

func TestReconcileDatabaseStep(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)

	sqlite := newServer(t, ns, "sqlite")
	s := &scope{ds: sqlite, status: newObserved(sqlite)}
	_, next, err := r.reconcileDatabase(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next)
	assert.Nil(t, s.status.database, "no database condition on SQLite")
	assert.False(t, s.db.gate)

	pg := newServer(t, ns, "pg", func(s *v1alpha1.DittoServerSpec) { s.Percona = &v1alpha1.PerconaSpec{Enabled: true} })
	s = &scope{ds: pg, status: newObserved(pg), findings: validation.Findings{PerconaCRDMissing: true}}
	res, next, err := r.reconcileDatabase(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next, "the later steps still report config and endpoints")
	assert.True(t, s.db.gate, "no pod without its database")
	assert.Zero(t, res.RequeueAfter, "no CRD watch here and no CRD: nothing to poll")
	require.NotNil(t, s.status.database)
	assert.Equal(t, specs.ReasonPerconaCRDMissing, s.status.database.reason)
	assert.Equal(t, "pg-postgres", s.status.perconaCluster)
}

func TestPerconaReadiness(t *testing.T) {
	verify := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns"},
		Spec: v1alpha1.DittoServerSpec{Percona: &v1alpha1.PerconaSpec{Enabled: true}}}
	encryptOnly := verify.DeepCopy()
	encryptOnly.Spec.Percona.SSLMode = "require"
	complete := &corev1.Secret{Data: map[string][]byte{"host": []byte("h"), "port": []byte("5432"), "dbname": []byte("dittofs"), "user": []byte("dittofs"), "password": []byte("p")}}
	partial := &corev1.Secret{Data: map[string][]byte{"host": []byte("h")}}
	ca := &corev1.Secret{Data: map[string][]byte{"ca.crt": []byte("-----BEGIN CERTIFICATE-----")}}
	cases := map[string]struct {
		ds        *v1alpha1.DittoServer
		state     string
		secret    *corev1.Secret
		ca        *corev1.Secret
		stsExists bool
		gate      bool
		reason    string
		contains  string
		hashed    int
	}{
		"initializing, new server":       {verify, "initializing", nil, nil, false, true, specs.ReasonPerconaNotReady, `is in state "initializing"; the DittoFS StatefulSet is created once it is ready`, 0},
		"initializing, running server":   {verify, "initializing", nil, nil, true, true, specs.ReasonPerconaNotReady, "the existing StatefulSet is left as it is until it is ready", 0},
		"no state yet":                   {verify, "", nil, nil, false, true, specs.ReasonPerconaNotReady, "not reporting a state yet", 0},
		"ready, no user Secret":          {verify, "ready", nil, nil, false, true, specs.ReasonPerconaSecretMissing, "user Secret x-postgres-pguser-dittofs does not exist yet", 0},
		"ready, Secret without password": {verify, "ready", partial, nil, false, true, specs.ReasonPerconaSecretMissing, "has no port, dbname, user, password yet", 0},
		"ready, no CA yet":               {verify, "ready", complete, nil, false, true, specs.ReasonPerconaSecretMissing, "certificate Secret x-postgres-cluster-cert has no ca.crt yet", 0},
		"ready, CA verified":             {verify, "ready", complete, ca, false, false, specs.ReasonPerconaReady, "DittoFS connects as dittofs to database dittofs with sslmode=verify-full", len(specs.PerconaEnvKeys) + 1},
		"ready, require: no CA needed":   {encryptOnly, "ready", complete, nil, false, false, specs.ReasonPerconaReady, "with sslmode=require", len(specs.PerconaEnvKeys)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out := perconaReadiness(tc.ds, tc.state, tc.secret, tc.ca, tc.stsExists, "")
			assert.Equal(t, tc.gate, out.gate)
			assert.Equal(t, tc.reason, out.condition.reason)
			assert.Contains(t, out.condition.message, tc.contains)
			assert.Equal(t, !tc.gate, out.condition.ok)
			if !tc.gate {
				assert.Equal(t, "x-postgres-pguser-dittofs", out.secret)
				assert.Len(t, out.hashInput, tc.hashed, "a password or CA rotation rolls the pod")
			}
		})
	}
	note := perconaReadiness(verify, "ready", complete, ca, false, "; "+validation.PostgresSecretIgnoredMessage)
	assert.True(t, strings.HasSuffix(note.condition.message, validation.PostgresSecretIgnoredMessage), "the ignored postgresSecretRef is said on every message")
}

func TestReconcileSecretsStep(t *testing.T) {
	r, events := newReconciler(t)
	ns := newNamespace(t)

	t.Run("generated once", func(t *testing.T) {
		ds := newServer(t, ns, "gen")
		s := &scope{ds: ds, status: newObserved(ds)}
		_, next, err := r.reconcileSecrets(ctx(), s)
		require.NoError(t, err)
		require.True(t, next)
		assert.Equal(t, specs.SecretKey{Name: "gen-jwt-secret", Key: specs.JWTSecretKey}, s.secrets.jwt)
		assert.Equal(t, specs.SecretKey{Name: "gen-admin-credentials", Key: specs.AdminPasswordKey}, s.secrets.admin)
		assert.Len(t, s.secrets.hashInput, 1, "the JWT key; the admin password is read on first boot only")
		assert.Equal(t, "gen-admin-credentials", s.secrets.adminHashPart.Name)
		jwt := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "gen-jwt-secret"}, jwt))
		assert.Len(t, jwt.Data[specs.JWTSecretKey], 48)
		assert.Equal(t, specs.PartOf, jwt.Labels[specs.LabelPartOf], "in the operator's cache")
		assert.Empty(t, jwt.OwnerReferences, "kept with the data when the server is deleted")
		assert.Equal(t, creations{"Secret gen-jwt-secret (generated once, never rotated by the operator)",
			"Secret gen-admin-credentials (generated once, never rotated by the operator)"},
			s.created, "for the reconcile's one Created event")
		assert.Empty(t, drain(events))
		cert := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "gen-api-tls"}, cert))
		assert.Equal(t, corev1.SecretTypeTLS, cert.Type)
		assert.True(t, specs.ValidAPICA(cert.Data), "the server's CA")
		renew, _ := specs.APICertificateRenewal(ds, r.ClusterDomain, cert.Data, time.Now())
		assert.False(t, renew, "a valid certificate from that CA")
		assert.Equal(t, ds.UID, metav1.GetControllerOf(cert).UID, "goes with the server")

		_, _, err = r.reconcileSecrets(ctx(), &scope{ds: ds, status: newObserved(ds)})
		require.NoError(t, err)
		again := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "gen-jwt-secret"}, again))
		assert.Equal(t, jwt.ResourceVersion, again.ResourceVersion, "never rewritten")
		assert.Empty(t, drain(events))

		// Edited out of band: labels put back, a removed key made again; kept values untouched.
		admin := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "gen-admin-credentials"}, admin))
		password := string(admin.Data[specs.AdminPasswordKey])
		admin.Labels = nil
		delete(admin.Data, specs.AdminUsernameKey)
		require.NoError(t, k8s.Update(ctx(), admin))
		_, _, err = r.reconcileSecrets(ctx(), &scope{ds: ds, status: newObserved(ds)})
		require.NoError(t, err)
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "gen-admin-credentials"}, admin))
		assert.Equal(t, specs.PartOf, admin.Labels[specs.LabelPartOf])
		assert.Equal(t, specs.DefaultAdminUser, string(admin.Data[specs.AdminUsernameKey]))
		assert.Equal(t, password, string(admin.Data[specs.AdminPasswordKey]), "a value is never replaced")
		assert.Contains(t, strings.Join(drain(events), "\n"), "Repaired Secret gen-admin-credentials")
	})

	problems := map[string]struct {
		secrets func(ns string)
		reason  string
		message string
	}{
		"missing": {func(string) {}, specs.ReasonSecretMissing, "Secret jwt (spec.identity.jwt.secretRef) does not exist in namespace"},
		"short JWT": {func(ns string) { newSecret(t, ns, "jwt", map[string]string{"secret": "short"}) },
			specs.ReasonSecretInvalid, `Secret jwt key "secret" (spec.identity.jwt.secretRef) holds fewer than 32 characters`},
		"no key": {func(ns string) { newSecret(t, ns, "jwt", map[string]string{"other": strings.Repeat("j", 40)}) },
			specs.ReasonSecretMissing, `Secret jwt has no key "secret" (spec.identity.jwt.secretRef)`},
	}
	for name, tc := range problems {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			tc.secrets(ns)
			ds := newServer(t, ns, "user", func(s *v1alpha1.DittoServerSpec) {
				s.Identity = &v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTSpec{SecretRef: secretRef("jwt", "secret")}}
			})
			s := &scope{ds: ds, status: newObserved(ds)}
			_, next, err := r.reconcileSecrets(ctx(), s)
			require.NoError(t, err, "a Problem is reported, not retried with a backoff")
			assert.False(t, next)
			assert.True(t, s.status.config.broken)
			assert.Equal(t, tc.reason, s.status.config.reason)
			assert.Contains(t, s.status.config.message, tc.message)
			assert.NotContains(t, s.status.config.message, "short", "never the value")
		})
	}

	t.Run("postgres URI", func(t *testing.T) {
		ns := newNamespace(t)
		refs := userSecrets(t, ns)
		newSecret(t, ns, "pg", map[string]string{"uri": "postgres://u:p%40ss@db.example:6432/ditto?sslmode=require"})
		ds := newServer(t, ns, "pg", refs, func(s *v1alpha1.DittoServerSpec) {
			s.Database = &v1alpha1.DatabaseSpec{PostgresSecretRef: secretRef("pg", "uri")}
		})
		s := &scope{ds: ds, status: newObserved(ds)}
		_, next, err := r.reconcileSecrets(ctx(), s)
		require.NoError(t, err)
		require.True(t, next)
		require.NotNil(t, s.status.database)
		assert.True(t, s.status.database.ok)
		assert.Equal(t, specs.ReasonPostgresSecret, s.status.database.reason)
		env := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "pg-db-credentials"}, env))
		assert.Equal(t, "p@ss", string(env.Data["password"]), "decoded once, read by the pod as env")
		assert.Equal(t, "6432", string(env.Data["port"]))
		assert.True(t, metav1.IsControlledBy(env, ds))
		assert.Len(t, s.secrets.hashInput, 2, "the JWT key and the URI are part of the config hash")
	})
}

// configMapFor writes the ConfigMap the Helm reconciler would render for ds.
func configMapFor(t *testing.T, r *Reconciler, ds *v1alpha1.DittoServer, config string) *corev1.ConfigMap {
	t.Helper()
	if config == "" {
		rendered, err := r.Renderer.Render(ds)
		require.NoError(t, err)
		config, err = rendered.ConfigYAML()
		require.NoError(t, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: specs.ConfigMapName(ds), Namespace: ds.Namespace},
		Data:       map[string]string{specs.ConfigFileName: config},
	}
	require.NoError(t, k8s.Create(ctx(), cm))
	return cm
}

func TestReconcileConfigStep(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)
	secrets := &resolvedSecrets{hashInput: []specs.HashPart{{Name: "jwt", Key: "secret", Value: []byte("v")}},
		adminHashPart: specs.HashPart{Name: "admin", Key: "password", Value: []byte("pw")}}

	t.Run("no ConfigMap yet", func(t *testing.T) {
		ds := newServer(t, ns, "new")
		s := &scope{ds: ds, status: newObserved(ds)}
		_, err := r.reconcileServer(ctx(), s)
		require.NoError(t, err)
		assert.Equal(t, specs.ReasonConfigPending, s.status.config.reason)
		assert.True(t, s.status.deferWrite, "Helm has not reported yet: its status write comes at once")
		assert.Empty(t, s.created, "nothing created before Helm's ConfigMap")
		err = k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "new-jwt-secret"}, &corev1.Secret{})
		assert.True(t, apierrors.IsNotFound(err), "the generated Secrets wait for the reconcile that creates the StatefulSet: %v", err)

		configMapFor(t, r, ds, "any: config\n")
		s = &scope{ds: ds, status: newObserved(ds)}
		_, next, err := r.awaitHelm(ctx(), s)
		require.NoError(t, err)
		assert.True(t, next, "the ConfigMap is there")
		require.NotNil(t, s.configMap, "handed to the config step")
		assert.Equal(t, "any: config\n", s.configMap.Data[specs.ConfigFileName])
	})
	t.Run("stale ConfigMap", func(t *testing.T) {
		ds := newServer(t, ns, "stale")
		cm := configMapFor(t, r, ds, "old: config\n")
		s := &scope{ds: ds, status: newObserved(ds), secrets: secrets, configMap: cm}
		_, next, err := r.reconcileConfig(ctx(), s)
		require.NoError(t, err)
		assert.False(t, next, "never a hash of a config the pod cannot see")
		assert.Contains(t, s.status.config.message, "does not match the spec yet")
		assert.False(t, s.status.config.broken)
		assert.True(t, s.status.deferWrite, "Helm has not reported on this generation: its upgrade comes at once")

		// Helm has reported on this generation (its upgrade failed): the pending config is written.
		ds.Status.Conditions = []metav1.Condition{{Type: specs.ConditionInitialized, Status: metav1.ConditionTrue, ObservedGeneration: ds.Generation}}
		s = &scope{ds: ds, status: newObserved(ds), secrets: secrets, configMap: cm}
		_, _, err = r.reconcileConfig(ctx(), s)
		require.NoError(t, err)
		assert.False(t, s.status.deferWrite)
	})
	t.Run("matching ConfigMap", func(t *testing.T) {
		ds := newServer(t, ns, "match")
		s := &scope{ds: ds, status: newObserved(ds), secrets: secrets, configMap: configMapFor(t, r, ds, "")}
		_, next, err := r.reconcileConfig(ctx(), s)
		require.NoError(t, err)
		assert.True(t, next)
		assert.True(t, s.status.config.ok)
		assert.Equal(t, specs.ConfigHash(s.configYAML, secrets.hashInput), s.hash)
		assert.Equal(t, specs.ConfigHash(s.configYAML, append(secrets.hashInput, secrets.adminHashPart)), s.legacyHash,
			"the hash operators before this one computed")
		assert.Equal(t, s.hash, s.status.config.hash)
	})
	t.Run("database not ready", func(t *testing.T) {
		ds := newServer(t, ns, "gated")
		cm := configMapFor(t, r, ds, "")
		ds.Status.ConfigHash = "running"
		s := &scope{ds: ds, status: newObserved(ds), secrets: secrets, db: perconaOutcome{gate: true}, configMap: cm}
		_, next, err := r.reconcileConfig(ctx(), s)
		require.NoError(t, err)
		assert.False(t, next, "no StatefulSet change while the database is not ready")
		assert.True(t, s.status.config.ok)
		assert.Equal(t, "running", s.status.config.hash, "status keeps the hash the pod runs with")
	})
	t.Run("values the chart refuses", func(t *testing.T) {
		raw, _ := json.Marshal(map[string]any{"ports": map[string]any{"nfs": 70000}})
		ds := newServer(t, ns, "refused", func(s *v1alpha1.DittoServerSpec) { s.ChartValues = &apiextensionsv1.JSON{Raw: raw} })
		s := &scope{ds: ds, status: newObserved(ds), secrets: secrets}
		_, next, err := r.reconcileConfig(ctx(), s)
		require.NoError(t, err)
		assert.False(t, next)
		assert.True(t, s.status.config.broken)
		assert.Equal(t, specs.ReasonRenderFailed, s.status.config.reason)
		assert.True(t, strings.HasPrefix(s.status.config.message, "spec.chartValues: "), s.status.config.message)
	})
}

func TestReconcileStatefulSetStep(t *testing.T) {
	r, events := newReconciler(t)
	ns := newNamespace(t)
	ds := newServer(t, ns, "sts", func(s *v1alpha1.DittoServerSpec) {
		s.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	})
	secrets := &resolvedSecrets{jwt: specs.SecretKey{Name: "j", Key: "k"}, admin: specs.SecretKey{Name: "a", Key: "k"}}
	run := func(hash string) (*scope, ctrl.Result) {
		t.Helper()
		s := &scope{ds: ds, status: newObserved(ds), secrets: secrets, hash: hash, legacyHash: "legacy-" + hash}
		res, next, err := r.reconcileStatefulSet(ctx(), s)
		require.NoError(t, err)
		require.True(t, next)
		require.NotNil(t, s.status.sts)
		return s, res
	}
	get := func() *appsv1.StatefulSet {
		sts := &appsv1.StatefulSet{}
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "sts"}, sts))
		return sts
	}

	run("h1")
	created := get()
	assert.Equal(t, "h1", created.Spec.Template.Annotations[specs.AnnotationConfigHash])
	assert.True(t, metav1.IsControlledBy(created, ds))
	assert.Empty(t, drain(events))

	run("h1")
	assert.Equal(t, created.ResourceVersion, get().ResourceVersion, "unchanged: no write")
	assert.Empty(t, drain(events))

	run("h2")
	assert.Equal(t, "h2", get().Spec.Template.Annotations[specs.AnnotationConfigHash])
	ev := drain(events)
	require.Len(t, ev, 1, "one event says the config changed and the pod rolls")
	assert.Contains(t, ev[0], "ConfigChanged Configuration or referenced Secrets changed (hash h1 -> h2): rolling the DittoFS pod to pick it up")

	// Drift: every field the operator sets is put back; what others add to its lists stays.
	edits := map[string]func(*corev1.PodSpec){
		"image":           func(p *corev1.PodSpec) { p.Containers[0].Image = "someone/else:1" },
		"env value":       func(p *corev1.PodSpec) { p.Containers[0].Env[1].ValueFrom.SecretKeyRef.Key = "other" },
		"probe":           func(p *corev1.PodSpec) { p.Containers[0].ReadinessProbe.PeriodSeconds = 99 },
		"volume":          func(p *corev1.PodSpec) { p.Volumes[0].ConfigMap.Name = "elsewhere" },
		"securityContext": func(p *corev1.PodSpec) { p.SecurityContext.RunAsUser = ptr.To(int64(0)) },
		"root filesystem": func(p *corev1.PodSpec) { p.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr.To(false) },
		"resources": func(p *corev1.PodSpec) {
			p.Containers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("64Mi")
		},
	}
	for name, edit := range edits {
		t.Run("drift: "+name, func(t *testing.T) {
			rv := get().ResourceVersion
			run("h2") // found matching: kept for this generation of the StatefulSet
			assert.Equal(t, rv, get().ResourceVersion, "unchanged: no write")
			sts := get()
			want := sts.Spec.Template.Spec.DeepCopy()
			edit(&sts.Spec.Template.Spec)
			require.NoError(t, k8s.Update(ctx(), sts))
			drain(events)
			run("h2")
			assert.Equal(t, *want, get().Spec.Template.Spec, "restored")
			assert.Contains(t, strings.Join(drain(events), "\n"), "Restored StatefulSet sts")
		})
	}
	t.Run("drift: the spec-hash annotation (no new generation)", func(t *testing.T) {
		run("h2")
		sts := get()
		delete(sts.Annotations, specs.AnnotationSpecHash)
		require.NoError(t, k8s.Update(ctx(), sts))
		require.Equal(t, sts.Generation, get().Generation, "a metadata edit keeps the generation")
		run("h2")
		assert.NotEmpty(t, get().Annotations[specs.AnnotationSpecHash], "applied again")
	})
	t.Run("entries of others stay", func(t *testing.T) {
		sts := get()
		sts.Spec.Template.Spec.Containers[0].Env = append(sts.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "EXTRA", Value: "1"})
		require.NoError(t, k8s.Update(ctx(), sts))
		rv := get().ResourceVersion
		run("h2")
		assert.Equal(t, rv, get().ResourceVersion, "server-side apply cannot remove another owner's entry: no write")
	})
	t.Run("a pod running with the hash of an older operator keeps it", func(t *testing.T) {
		run("legacy-h5") // as an operator that hashed the admin password applied it
		drain(events)
		rv := get().ResourceVersion
		s, _ := run("h5")
		assert.Equal(t, rv, get().ResourceVersion, "no restart for the admin password leaving the hash")
		assert.Equal(t, "legacy-h5", s.status.config.hash, "status shows the hash the pod runs with")
		run("h2")
		assert.Equal(t, "h2", get().Spec.Template.Annotations[specs.AnnotationConfigHash], "a new configuration rolls out the new hash")
		drain(events)
	})

	// A larger volume on a StorageClass that cannot grow it: the rest still applies.
	require.NoError(t, k8s.Create(ctx(), &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-fixed"}, Provisioner: "example.com/none"}))
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "metadata-sts-0", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To(ns + "-fixed"),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	require.NoError(t, k8s.Create(ctx(), pvc))
	ds.Spec.Storage.MetadataSize = "2Gi"
	s, res := run("h3")
	assert.Equal(t, invalidSpecRecheck, res.RequeueAfter, "retried in case the StorageClass changes")
	require.Len(t, s.status.warnings, 1)
	assert.Contains(t, s.status.warnings[0], "spec.storage.metadataSize 1Gi -> 2Gi is not applied: PersistentVolumeClaim metadata-sts-0 uses StorageClass "+ns+"-fixed, which does not allow volume expansion")
	sts := get()
	assert.Equal(t, "h3", sts.Spec.Template.Annotations[specs.AnnotationConfigHash], "the new config is applied on the current volumes")
	assert.True(t, sts.DeletionTimestamp.IsZero(), "the StatefulSet is kept")
	ev = drain(events)
	assert.Contains(t, strings.Join(ev, "\n"), "Warning VolumeExpansionBlocked")
}

func TestReconcileControlPlaneStep(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)
	newSecret(t, ns, "admin", map[string]string{"password": "pw"})
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "cp", Namespace: ns}}
	ds.Spec.ControlPlane = &v1alpha1.ControlPlaneSpec{TLS: &v1alpha1.APITLSSpec{Mode: v1alpha1.APITLSDisabled}}
	s := &scope{ds: ds, status: newObserved(ds), secrets: &resolvedSecrets{admin: specs.SecretKey{Name: "admin", Key: "password"}}}
	s.status.observeStatefulSet(readySts(1))
	_, next, err := r.reconcileControlPlane(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next)
	assert.Nil(t, s.status.controlPlane, "the step is off: no condition")

	calls := 0
	r.ControlPlane = controlplane.New(controlplane.Options{APIEndpoint: func(*v1alpha1.DittoServer, string) string {
		calls++
		return "http://127.0.0.1:1"
	}}, controlplane.Deps{Client: k8s, Secrets: r.Secrets, Recorder: r.Recorder})
	notReady := readySts(1)
	notReady.Status.ReadyReplicas = 0
	s.status.observeStatefulSet(notReady)
	_, next, err = r.reconcileControlPlane(ctx(), s)
	require.NoError(t, err)
	assert.True(t, next)
	assert.Zero(t, calls, "nothing listens before the pod is ready")
	assert.Nil(t, s.status.controlPlane)

	s.status.observeStatefulSet(readySts(1))
	res, _, err := r.reconcileControlPlane(ctx(), s)
	require.NoError(t, err)
	assert.Equal(t, 1, calls)
	require.NotNil(t, s.status.controlPlane)
	assert.Equal(t, metav1.ConditionUnknown, s.status.controlPlane.ControlPlane.Status, "a closed port is an unreachable API")
	assert.Equal(t, 30*time.Second, res.RequeueAfter, "first retry of an unreachable API")
}

// TestReconcileServerHalts: the steps run in order and stop where a later one cannot run; the
// status still shows the StatefulSet.
func TestReconcileServerHalts(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)
	ds := newServer(t, ns, "halt", func(s *v1alpha1.DittoServerSpec) {
		s.Identity = &v1alpha1.IdentitySpec{Admin: &v1alpha1.AdminSpec{PasswordSecretRef: secretRef("missing", "password")}}
	})
	configMapFor(t, r, ds, "any: config\n")
	s := &scope{ds: ds, status: newObserved(ds)}
	res, err := r.reconcileServer(ctx(), s)
	require.NoError(t, err)
	assert.Zero(t, res.RequeueAfter, "watch-driven: the Secret's creation brings the server back")
	assert.Equal(t, specs.ReasonSecretMissing, s.status.config.reason)
	assert.True(t, s.status.stsObserved, "the status looked at the StatefulSet")
	assert.Nil(t, s.status.sts)
	err = k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "halt"}, &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "no StatefulSet for a server that cannot start: %v", err)
	assert.Empty(t, s.configYAML, "the config step did not run")
}

// TestExpandVolumes: a larger size on an expandable StorageClass resizes the PVC and re-creates
// the StatefulSet without its pod.
func TestExpandVolumes(t *testing.T) {
	r, events := newReconciler(t)
	ns := newNamespace(t)
	class := ns + "-grows"
	require.NoError(t, k8s.Create(ctx(), &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Provisioner: "example.com/none", AllowVolumeExpansion: ptr.To(true)}))
	ds := newServer(t, ns, "grow", func(s *v1alpha1.DittoServerSpec) { s.Storage.StorageClassName = ptr.To(class) })
	secrets := &resolvedSecrets{jwt: specs.SecretKey{Name: "j", Key: "k"}, admin: specs.SecretKey{Name: "a", Key: "k"}}
	_, _, err := r.reconcileStatefulSet(ctx(), &scope{ds: ds, status: newObserved(ds), secrets: secrets, hash: "h"})
	require.NoError(t, err)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "metadata-grow-0", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To(class),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	require.NoError(t, k8s.Create(ctx(), pvc))
	// Bound, as a provisioner would leave it (only a bound claim may grow).
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
	require.NoError(t, k8s.Status().Update(ctx(), pvc))
	drain(events)

	ds.Spec.Storage.MetadataSize = "3Gi"
	s := &scope{ds: ds, status: newObserved(ds), secrets: secrets, hash: "h"}
	res, next, err := r.reconcileStatefulSet(ctx(), s)
	require.NoError(t, err)
	assert.False(t, next, "the control plane waits for the new StatefulSet")
	assert.Equal(t, time.Second, res.RequeueAfter)
	assert.Equal(t, "re-creating StatefulSet grow for the new volume sizes (PVCs resized: metadata-grow-0 to 3Gi)", s.status.replacing)
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(pvc), pvc))
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	assert.Equal(t, "3Gi", size.String())
	err = k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "grow"}, &appsv1.StatefulSet{})
	sts := &appsv1.StatefulSet{}
	if err == nil {
		require.NoError(t, k8s.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "grow"}, sts))
		assert.False(t, sts.DeletionTimestamp.IsZero(), "deleted (orphaning its pod) for the new claim templates")
	} else {
		assert.True(t, apierrors.IsNotFound(err), "deleted for the new claim templates: %v", err)
	}
	assert.Contains(t, strings.Join(drain(events), "\n"), "Normal VolumesExpanding Resized PersistentVolumeClaims: metadata-grow-0 to 3Gi")
}

func TestUnusedVolumes(t *testing.T) {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "x"}}
	all := []string{"controlplane", "metadata", "cache", "content"}
	assert.Nil(t, unusedVolumes(ds, all, ""), "not known yet")
	assert.Empty(t, unusedVolumes(ds, []string{"controlplane", "metadata", "content"}, "content"))
	got := unusedVolumes(ds, all, "cache")
	require.Len(t, got, 1)
	assert.Equal(t, "PersistentVolumeClaim content-x-0 (spec.storage.contentSize) holds nothing: the local block store is on the cache volume; it is kept, delete it yourself if you do not need it", got[0])
}

// TestRenderConfigKeptPerGeneration: a server's render is made once per generation (the spec
// can only change with it), and again for a new one.
func TestRenderConfigKeptPerGeneration(t *testing.T) {
	r, _ := newReconciler(t)
	ns := newNamespace(t)
	ds := newServer(t, ns, "memo")
	first, err := r.renderConfig(ds)
	require.NoError(t, err)
	require.Contains(t, first, "/data/controlplane/controlplane.db")

	same := ds.DeepCopy()
	same.Spec.Database = &v1alpha1.DatabaseSpec{Type: "sqlite", SQLite: &v1alpha1.SQLiteSpec{Path: "/data/controlplane/other.db"}}
	kept, err := r.renderConfig(same)
	require.NoError(t, err)
	assert.Equal(t, first, kept, "same generation: the kept render")

	same.Generation++
	next, err := r.renderConfig(same)
	require.NoError(t, err)
	assert.Contains(t, next, "/data/controlplane/other.db", "a new generation renders again")
}
