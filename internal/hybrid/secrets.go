package hybrid

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// resolvedSecrets is what the controller learned from the Secrets the server depends on.
type resolvedSecrets struct {
	jwt, admin specs.SecretKey
	// hashInput is name/key/value of every referenced key the process reads at boot: the JWT
	// signing key and PostgreSQL settings, not the admin password (read on first boot only; a
	// new one is set through the REST API).
	hashInput []specs.HashPart
	// adminHashPart is the admin password, which operators before this one hashed too.
	adminHashPart specs.HashPart
	// postgres holds the discrete PostgreSQL settings parsed from a URI, when one is given.
	postgres map[string]string
	// warnings are non-fatal findings (e.g. an S3 Secret that does not exist yet).
	warnings []string
}

// reconcileSecrets creates the generated Secrets, checks every Secret key the server needs
// (a Problem names the Secret and key, never the value) and, for a postgresSecretRef, writes
// the discrete PostgreSQL settings into <name>-db-credentials.
func (r *Reconciler) reconcileSecrets(ctx context.Context, s *scope) (ctrl.Result, bool, error) {
	ds := s.ds
	if err := r.ensureGeneratedSecrets(ctx, ds, &s.created); err != nil {
		return ctrl.Result{}, halt, err
	}
	if err := r.releaseCredentials(ctx, ds); err != nil {
		return ctrl.Result{}, halt, err
	}
	renewIn, err := r.ensureAPICertificate(ctx, ds)
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	secrets, err := resolveSecrets(ctx, r.Secrets, ds)
	if problem, ok := specs.AsProblem(err); ok {
		// Watch-driven: the Secret watch brings the server back once the Secret is fixed.
		s.status.configFailed(problem)
		return ctrl.Result{}, halt, nil
	}
	if err != nil {
		return ctrl.Result{}, halt, err
	}
	s.secrets = secrets
	s.status.warnings = append(s.status.warnings, secrets.warnings...)
	if secrets.postgres != nil {
		if err := r.ensurePostgresEnvSecret(ctx, ds, secrets.postgres); err != nil {
			return ctrl.Result{}, halt, err
		}
		ref := ds.Spec.Database.PostgresSecretRef
		s.status.database = &finding{ok: true, reason: specs.ReasonPostgresSecret, message: fmt.Sprintf(
			"PostgreSQL settings from Secret %s key %q are in Secret %s", ref.Name, ref.Key, specs.PostgresEnvSecretName(ds))}
	}
	return ctrl.Result{RequeueAfter: renewIn}, proceed, nil
}

// ensureGeneratedSecrets creates the JWT and admin Secrets the user did not provide. They are
// created once and never updated, so a password is never rotated behind the user's back. They
// have no owner reference: like the PVCs they are kept when the server is deleted (they open
// its data), and a server created again with the same name adopts them.
func (r *Reconciler) ensureGeneratedSecrets(ctx context.Context, ds *v1alpha1.DittoServer, created *creations) error {
	if jwt := specs.JWTSecretRef(ds); jwt.Name == specs.JWTSecretName(ds) {
		if err := r.ensureGeneratedSecret(ctx, ds, jwt.Name, "jwt", []generatedKey{{specs.JWTSecretKey, 48, ""}}, created); err != nil {
			return err
		}
	}
	if admin := specs.AdminSecretRef(ds); admin.Name == specs.AdminSecretName(ds) {
		keys := []generatedKey{{specs.AdminUsernameKey, 0, specs.DefaultAdminUser}, {specs.AdminPasswordKey, 24, ""}}
		if err := r.ensureGeneratedSecret(ctx, ds, admin.Name, "admin-credentials", keys, created); err != nil {
			return err
		}
	}
	return nil
}

// generatedKey is a key of a generated Secret: a fixed value, or a random one of length n.
type generatedKey struct {
	name  string
	n     int
	fixed string
}

func (k generatedKey) value() (string, error) {
	if k.fixed != "" {
		return k.fixed, nil
	}
	return specs.RandomString(k.n)
}

// ensureGeneratedSecret creates a generated Secret once. One edited out of band is repaired
// where it can be without touching a value it holds: its labels (the operator's cache and
// watches select by them) and a key that was removed or emptied (a new value: a new admin
// password is then set on the server through the API, a new JWT key restarts the pod).
func (r *Reconciler) ensureGeneratedSecret(ctx context.Context, ds *v1alpha1.DittoServer, name, component string, keys []generatedKey, created *creations) error {
	labels := specs.CommonLabels(ds, component)
	existing := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, existing)
	if apierrors.IsNotFound(err) {
		data := map[string]string{}
		for _, k := range keys {
			if data[k.name], err = k.value(); err != nil {
				return err
			}
		}
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: labels},
			Type:       corev1.SecretTypeOpaque,
			StringData: data,
		}
		err = r.Client.Create(ctx, secret)
		if err == nil {
			created.add("Secret %s (generated once, never rotated by the operator)", name)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Secret %s/%s: %w", ds.Namespace, name, err)
		}
		// There, but not in the cache: its labels were removed.
		err = r.APIReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, existing)
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, name, err)
	}
	patch := client.MergeFrom(existing.DeepCopy())
	var repaired []string
	for k, v := range labels {
		if existing.Labels[k] != v {
			if existing.Labels == nil {
				existing.Labels = map[string]string{}
			}
			existing.Labels[k] = v
			repaired = append(repaired, "label "+k)
		}
	}
	for _, k := range keys {
		if len(existing.Data[k.name]) > 0 {
			continue
		}
		value, err := k.value()
		if err != nil {
			return err
		}
		if existing.Data == nil {
			existing.Data = map[string][]byte{}
		}
		existing.Data[k.name] = []byte(value)
		repaired = append(repaired, "key "+k.name)
	}
	if len(repaired) == 0 {
		return nil
	}
	sort.Strings(repaired)
	if err := r.Client.Patch(ctx, existing, patch); err != nil {
		return fmt.Errorf("repairing Secret %s/%s: %w", ds.Namespace, name, err)
	}
	r.Recorder.Eventf(ds, corev1.EventTypeWarning, specs.EventDriftReverted, "Repaired Secret %s, edited outside the operator: %s", name, strings.Join(repaired, ", "))
	return nil
}

// resolveSecrets reads every Secret key the server depends on, validates the values, and
// collects them for the config hash. A value the server cannot start with is a Problem.
func resolveSecrets(ctx context.Context, secrets client.Reader, ds *v1alpha1.DittoServer) (*resolvedSecrets, error) {
	out := &resolvedSecrets{jwt: specs.JWTSecretRef(ds), admin: specs.AdminSecretRef(ds)}
	read := func(field string, ref specs.SecretKey) ([]byte, error) {
		value, err := requiredKey(ctx, secrets, ds.Namespace, field, ref)
		if err == nil {
			out.hashInput = append(out.hashInput, specs.HashPart{Name: ref.Name, Key: ref.Key, Value: value})
		}
		return value, err
	}

	value, err := read("spec.identity.jwt.secretRef", out.jwt)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(value))) < specs.JWTSecretMinLength {
		return nil, specs.Problemf(specs.ReasonSecretInvalid,
			"Secret %s key %q (spec.identity.jwt.secretRef) holds fewer than %d characters; DittoFS refuses to start with it. Store a longer random value, e.g. openssl rand -base64 48",
			out.jwt.Name, out.jwt.Key, specs.JWTSecretMinLength)
	}

	value, err = requiredKey(ctx, secrets, ds.Namespace, "spec.identity.admin.passwordSecretRef", out.admin)
	if err != nil {
		return nil, err
	}
	out.adminHashPart = specs.HashPart{Name: out.admin.Name, Key: out.admin.Key, Value: value}
	if len(strings.TrimSpace(string(value))) == 0 {
		return nil, specs.Problemf(specs.ReasonSecretInvalid,
			"Secret %s key %q (spec.identity.admin.passwordSecretRef) is empty; DittoFS needs the admin password in cleartext there",
			out.admin.Name, out.admin.Key)
	}

	if db := ds.Spec.Database; db != nil && db.PostgresSecretRef != nil && !ds.Spec.PerconaEnabled() {
		ref := specs.SecretKey{Name: db.PostgresSecretRef.Name, Key: db.PostgresSecretRef.Key}
		value, err := read("spec.database.postgresSecretRef", ref)
		if err != nil {
			return nil, err
		}
		settings, perr := specs.ParsePostgresURI(string(value))
		if perr != nil {
			return nil, specs.Problemf(specs.ReasonSecretInvalid,
				"Secret %s key %q (spec.database.postgresSecretRef) is not a PostgreSQL URI: %v; expected postgres://user:password@host:5432/database?sslmode=require with special characters percent-encoded",
				ref.Name, ref.Key, perr)
		}
		out.postgres = settings
	}

	if t := ds.Spec.MetricsTokenRef(); t != nil {
		ref := specs.SecretKey{Name: t.Name, Key: t.Key}
		value, err := read("spec.metrics.bearerTokenSecretRef", ref)
		if err != nil {
			return nil, err
		}
		if len(strings.TrimSpace(string(value))) == 0 {
			return nil, specs.Problemf(specs.ReasonSecretInvalid,
				"Secret %s key %q (spec.metrics.bearerTokenSecretRef) is empty; DittoFS refuses to start with an empty metrics token. Store a random value, e.g. openssl rand -hex 32",
				ref.Name, ref.Key)
		}
	}

	if err := resolveIdentitySecrets(ctx, secrets, ds, out); err != nil {
		return nil, err
	}

	if ds.Spec.APITLSMode() == v1alpha1.APITLSSecret {
		// Not hashed: DittoFS reloads a renewed certificate (cert-manager's) without a restart.
		name := ds.Spec.ControlPlane.TLS.SecretName
		for _, key := range []string{specs.APITLSCert, specs.APITLSKey} {
			if _, err := requiredKey(ctx, secrets, ds.Namespace, "spec.controlPlane.tls.secretName", specs.SecretKey{Name: name, Key: key}); err != nil {
				return nil, err
			}
		}
	}

	// The S3 credentials are not part of the config hash: DittoFS v0.29.0 reads them from the
	// remote block store's configuration, which the control-plane step updates through the
	// REST API, so a rotation needs no restart of the config (the store update restarts the pod
	// once: docs/CONTROLPLANE.md).
	if s3 := ds.Spec.S3; s3 != nil && s3.CredentialsSecretRef != nil {
		ref := s3.CredentialsSecretRef
		err := secrets.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ref.SecretName}, &corev1.Secret{})
		if apierrors.IsNotFound(err) {
			out.warnings = append(out.warnings, fmt.Sprintf("Secret %s (spec.s3.credentialsSecretRef) does not exist yet", ref.SecretName))
		} else if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, ref.SecretName, err)
		}
	}
	return out, nil
}

// resolveIdentitySecrets checks the Secret keys of spec.identity.ldap and .kerberos. The keytab
// and krb5.conf are hashed (DittoFS loads them at startup); the LDAP bind password and CA are
// not: the password goes through the REST API and DittoFS reads the CA at every connection.
func resolveIdentitySecrets(ctx context.Context, secrets client.Reader, ds *v1alpha1.DittoServer, out *resolvedSecrets) error {
	id := ds.Spec.Identity
	if id == nil {
		return nil
	}
	if l := id.LDAP; l != nil {
		ref := specs.SecretKey{Name: l.BindPasswordSecretRef.Name, Key: l.BindPasswordSecretRef.Key}
		value, err := requiredKey(ctx, secrets, ds.Namespace, "spec.identity.ldap.bindPasswordSecretRef", ref)
		if err != nil {
			return err
		}
		if len(value) == 0 {
			return specs.Problemf(specs.ReasonSecretInvalid,
				"Secret %s key %q (spec.identity.ldap.bindPasswordSecretRef) is empty; DittoFS refuses an anonymous bind: store the password of %s there",
				ref.Name, ref.Key, l.BindDN)
		}
		if ca := l.CASecretRef; ca != nil {
			if _, err := requiredKey(ctx, secrets, ds.Namespace, "spec.identity.ldap.caSecretRef", specs.SecretKey{Name: ca.Name, Key: ca.Key}); err != nil {
				return err
			}
		}
	}
	k := id.Kerberos
	if k == nil {
		return nil
	}
	enabled := k.IsEnabled()
	keys := []struct{ field, key string }{
		{"spec.identity.kerberos.keytabSecretRef", k.KeytabSecretRef.Key},
		{"spec.identity.kerberos.krb5ConfKey", k.Krb5ConfKeyOrDefault()},
	}
	for _, e := range keys {
		ref := specs.SecretKey{Name: k.KeytabSecretRef.Name, Key: e.key}
		value, err := requiredKey(ctx, secrets, ds.Namespace, e.field, ref)
		if err != nil {
			if !enabled {
				// Kerberos is off: the pod mounts the Secret optionally, nothing reads it.
				continue
			}
			return err
		}
		if len(value) == 0 && enabled {
			return specs.Problemf(specs.ReasonSecretInvalid, "Secret %s key %q (%s) is empty; store the file there (kubectl create secret generic %s --from-file=%s=<file>)",
				ref.Name, ref.Key, e.field, ref.Name, ref.Key)
		}
		out.hashInput = append(out.hashInput, specs.HashPart{Name: ref.Name, Key: ref.Key, Value: value})
	}
	return nil
}

// requiredKey returns the value of a Secret key the server cannot start without.
func requiredKey(ctx context.Context, secrets client.Reader, namespace, field string, ref specs.SecretKey) ([]byte, error) {
	secret := &corev1.Secret{}
	err := secrets.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, secret)
	if apierrors.IsNotFound(err) {
		return nil, specs.Problemf(specs.ReasonSecretMissing,
			"Secret %s (%s) does not exist in namespace %s; create it, or remove the reference to let the operator generate one",
			ref.Name, field, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, ref.Name, err)
	}
	value, ok := secret.Data[ref.Key]
	if !ok {
		return nil, specs.Problemf(specs.ReasonSecretMissing,
			"Secret %s has no key %q (%s); add the key or point %s.key at an existing one", ref.Name, ref.Key, field, field)
	}
	return value, nil
}

// ensurePostgresEnvSecret writes the discrete PostgreSQL settings parsed from the user's URI
// into an operator-owned Secret, which the pod env reads (never plaintext in the pod spec).
func (r *Reconciler) ensurePostgresEnvSecret(ctx context.Context, ds *v1alpha1.DittoServer, settings map[string]string) error {
	name := specs.PostgresEnvSecretName(ds)
	existing := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, existing)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err == nil && secretDataEquals(existing.Data, settings) {
		return nil
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: specs.CommonLabels(ds, "db-credentials")},
		Type:       corev1.SecretTypeOpaque,
		StringData: settings,
	}
	return r.apply(ctx, ds, secret)
}

func secretDataEquals(have map[string][]byte, want map[string]string) bool {
	if len(have) != len(want) {
		return false
	}
	for k, v := range want {
		if string(have[k]) != v {
			return false
		}
	}
	return true
}

// credentialSecretNames are the Secrets the operator generated for a server: the ones that open
// its data (admin password, JWT signing key, the operator's account).
func credentialSecretNames(ds *v1alpha1.DittoServer) []string {
	names := []string{specs.OperatorSecretName(ds)}
	if ref := specs.JWTSecretRef(ds); ref.Name == specs.JWTSecretName(ds) {
		names = append(names, ref.Name)
	}
	if ref := specs.AdminSecretRef(ds); ref.Name == specs.AdminSecretName(ds) {
		names = append(names, ref.Name)
	}
	return names
}

// releaseCredentials removes the server's owner reference from its generated credentials:
// operators before this one set it, and the garbage collector would delete them with the server
// while its volumes are kept. One write per Secret, once.
func (r *Reconciler) releaseCredentials(ctx context.Context, ds *v1alpha1.DittoServer) error {
	for _, name := range credentialSecretNames(ds) {
		secret := &corev1.Secret{}
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, secret)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !ownedBy(secret, ds) {
			continue
		}
		if err := r.disown(ctx, secret, ds); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("keeping Secret %s/%s with the data (removing its owner reference): %w", ds.Namespace, name, err)
		}
	}
	return nil
}
