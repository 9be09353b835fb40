package hybrid

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Names of the Secrets the operator creates.
func JWTSecretName(ds *v1alpha1.DittoServer) string         { return ds.Name + "-jwt-secret" }
func AdminSecretName(ds *v1alpha1.DittoServer) string       { return ds.Name + "-admin-credentials" }
func PostgresEnvSecretName(ds *v1alpha1.DittoServer) string { return ds.Name + "-db-credentials" }

// SecretProblem is a referenced Secret the server cannot start with. It becomes a condition
// reason and message; the message names the Secret and key, never the value.
type SecretProblem struct {
	Reason  string
	Message string
}

func (p *SecretProblem) Error() string { return p.Message }

// resolvedSecrets is what the controller learned from the referenced Secrets.
type resolvedSecrets struct {
	JWT, Admin SecretKey
	// hashInput is name/key/value of every referenced key, in a fixed order.
	hashInput []hashPart
	// postgres holds the discrete PostgreSQL settings parsed from a URI, when one is given.
	postgres map[string]string
	// warnings are non-fatal findings (e.g. an S3 Secret that does not exist yet).
	warnings []string
}

type hashPart struct {
	Name, Key string
	Value     []byte
}

// ensureGeneratedSecrets creates the JWT and admin Secrets the user did not provide. They are
// created once and never updated, so a password is never rotated behind the user's back.
func (r *Reconciler) ensureGeneratedSecrets(ctx context.Context, ds *v1alpha1.DittoServer) (jwt, admin SecretKey, err error) {
	id := ds.Spec.Identity
	if id != nil && id.JWT != nil && id.JWT.SecretRef != nil {
		jwt = SecretKey{Name: id.JWT.SecretRef.Name, Key: id.JWT.SecretRef.Key}
	} else {
		jwt = SecretKey{Name: JWTSecretName(ds), Key: JWTSecretKey}
		value, err := randomString(48)
		if err != nil {
			return jwt, admin, err
		}
		if err := r.createSecretOnce(ctx, ds, jwt.Name, "jwt", map[string]string{JWTSecretKey: value}); err != nil {
			return jwt, admin, err
		}
	}
	if id != nil && id.Admin != nil && id.Admin.PasswordSecretRef != nil {
		admin = SecretKey{Name: id.Admin.PasswordSecretRef.Name, Key: id.Admin.PasswordSecretRef.Key}
	} else {
		admin = SecretKey{Name: AdminSecretName(ds), Key: AdminPasswordKey}
		value, err := randomString(24)
		if err != nil {
			return jwt, admin, err
		}
		data := map[string]string{AdminUsernameKey: DefaultAdminUser, AdminPasswordKey: value}
		if err := r.createSecretOnce(ctx, ds, admin.Name, "admin-credentials", data); err != nil {
			return jwt, admin, err
		}
	}
	return jwt, admin, nil
}

func (r *Reconciler) createSecretOnce(ctx context.Context, ds *v1alpha1.DittoServer, name, component string, data map[string]string) error {
	existing := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, existing)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, name, err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace, Labels: CommonLabels(ds, component)},
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
	if err := controllerutil.SetControllerReference(ds, secret, r.Scheme); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("creating Secret %s/%s: %w", ds.Namespace, name, err)
	}
	r.Recorder.Eventf(ds, corev1.EventTypeNormal, EventSecretCreated, "Created Secret %s (generated once, never rotated by the operator)", name)
	return nil
}

// readSecret reads a Secret: generated ones come from the cache, user Secrets through the API
// reader (the cache only holds Secrets the operator labelled).
func (r *Reconciler) readSecret(ctx context.Context, ds *v1alpha1.DittoServer, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: ds.Namespace, Name: name}
	var reader client.Reader = r.Secrets
	if name == JWTSecretName(ds) || name == AdminSecretName(ds) {
		reader = r.Client
	}
	if err := reader.Get(ctx, key, s); err != nil {
		return nil, err
	}
	return s, nil
}

// resolveSecrets reads every Secret key the server depends on, validates the values, and
// collects them for the config hash.
func (r *Reconciler) resolveSecrets(ctx context.Context, ds *v1alpha1.DittoServer, jwt, admin SecretKey) (*resolvedSecrets, error) {
	out := &resolvedSecrets{JWT: jwt, Admin: admin}

	value, err := r.requiredKey(ctx, ds, "spec.identity.jwt.secretRef", jwt)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(value))) < JWTSecretMinLength {
		return nil, &SecretProblem{Reason: ReasonSecretInvalid, Message: fmt.Sprintf(
			"Secret %s key %q (spec.identity.jwt.secretRef) holds fewer than %d characters; DittoFS refuses to start with it. Store a longer random value, e.g. openssl rand -base64 48",
			jwt.Name, jwt.Key, JWTSecretMinLength)}
	}
	out.hashInput = append(out.hashInput, hashPart{jwt.Name, jwt.Key, value})

	value, err = r.requiredKey(ctx, ds, "spec.identity.admin.passwordSecretRef", admin)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(value))) == 0 {
		return nil, &SecretProblem{Reason: ReasonSecretInvalid, Message: fmt.Sprintf(
			"Secret %s key %q (spec.identity.admin.passwordSecretRef) is empty; DittoFS needs the admin password in cleartext there",
			admin.Name, admin.Key)}
	}
	out.hashInput = append(out.hashInput, hashPart{admin.Name, admin.Key, value})

	if db := ds.Spec.Database; db != nil && db.PostgresSecretRef != nil && !ds.Spec.PerconaEnabled() {
		ref := SecretKey{Name: db.PostgresSecretRef.Name, Key: db.PostgresSecretRef.Key}
		value, err := r.requiredKey(ctx, ds, "spec.database.postgresSecretRef", ref)
		if err != nil {
			return nil, err
		}
		settings, perr := ParsePostgresURI(string(value))
		if perr != nil {
			return nil, &SecretProblem{Reason: ReasonSecretInvalid, Message: fmt.Sprintf(
				"Secret %s key %q (spec.database.postgresSecretRef) is not a PostgreSQL URI: %v; expected postgres://user:password@host:5432/database?sslmode=require with special characters percent-encoded",
				ref.Name, ref.Key, perr)}
		}
		out.postgres = settings
		out.hashInput = append(out.hashInput, hashPart{ref.Name, ref.Key, value})
	}

	// The S3 credentials are not part of the config hash: DittoFS v0.29.0 reads them from the
	// remote block store's configuration, which the operator updates through the REST API
	// (controlplane.go), so a rotation needs no pod restart.
	if s3 := ds.Spec.S3; s3 != nil && s3.CredentialsSecretRef != nil {
		ref := s3.CredentialsSecretRef
		if _, err := r.readSecret(ctx, ds, ref.SecretName); apierrors.IsNotFound(err) {
			out.warnings = append(out.warnings, fmt.Sprintf("Secret %s (spec.s3.credentialsSecretRef) does not exist yet", ref.SecretName))
		} else if err != nil {
			return nil, fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, ref.SecretName, err)
		}
	}
	return out, nil
}

// requiredKey returns the value of a Secret key the server cannot start without.
func (r *Reconciler) requiredKey(ctx context.Context, ds *v1alpha1.DittoServer, field string, ref SecretKey) ([]byte, error) {
	secret, err := r.readSecret(ctx, ds, ref.Name)
	if apierrors.IsNotFound(err) {
		return nil, &SecretProblem{Reason: ReasonSecretMissing, Message: fmt.Sprintf(
			"Secret %s (%s) does not exist in namespace %s; create it, or remove the reference to let the operator generate one",
			ref.Name, field, ds.Namespace)}
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, ref.Name, err)
	}
	value, ok := secret.Data[ref.Key]
	if !ok {
		return nil, &SecretProblem{Reason: ReasonSecretMissing, Message: fmt.Sprintf(
			"Secret %s has no key %q (%s); add the key or point %s.key at an existing one", ref.Name, ref.Key, field, field)}
	}
	return value, nil
}

// ParsePostgresURI splits a postgres:// URI into the discrete settings DittoFS reads.
func ParsePostgresURI(raw string) (map[string]string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse echoes the input, which holds the password: report only the kind of error.
		return nil, fmt.Errorf("the URI does not parse")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("scheme must be postgres:// or postgresql://")
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("the host is missing")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("the user is missing")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("the database name is missing")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	password, _ := u.User.Password()
	sslmode := u.Query().Get("sslmode")
	if sslmode == "" {
		sslmode = "prefer"
	}
	return map[string]string{
		"host": u.Hostname(), "port": port, "database": db,
		"user": u.User.Username(), "password": password, "sslmode": sslmode,
	}, nil
}

const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating a random secret: %w", err)
		}
		b[i] = passwordAlphabet[v.Int64()]
	}
	return string(b), nil
}
