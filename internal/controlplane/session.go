package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// session is a logged-in API client of one server.
type session struct {
	client *dittoapi.Client
	// hc is the HTTP client the session was made with (tls.go: another CA, another client).
	hc      *http.Client
	refresh string
	expires time.Time
}

// login sets r.api to a logged-in client: the kept session, refreshed before expiry, else a
// login with the operator account, else the account is (re)provisioned with the admin Secret.
func (r *run) login(ctx context.Context, base string, admin specs.SecretKey) error {
	uid := r.ds.UID
	r.mu.Lock()
	s := r.sessions[uid]
	r.mu.Unlock()
	if s != nil && (s.client.BaseURL() != base || s.hc != r.hc) {
		s = nil // another address or another certificate to trust: a new session
	}
	if s != nil {
		if time.Until(s.expires) > time.Minute {
			r.api = s.client
			return nil
		}
		if s.refresh != "" {
			if tok, err := s.client.Refresh(ctx, s.refresh); err == nil {
				r.keep(uid, s.client, tok)
				r.api = s.client
				return nil
			}
		}
	}
	c := dittoapi.New(base, r.hc)
	if s != nil {
		c = s.client // keep the call counter
	}
	if r.secret.Name != "" {
		tok, err := r.loginAsOperator(ctx, c)
		if err == nil {
			r.keep(uid, c, tok)
			r.api = c
			return nil
		}
		if !dittoapi.IsUnauthorized(err) {
			return err
		}
		// The account is gone or its password changed (e.g. a fresh control-plane database).
	}
	if err := r.provisionOperator(ctx, base, admin); err != nil {
		return err
	}
	tok, err := r.loginAsOperator(ctx, c)
	if err != nil {
		return fmt.Errorf("logging in as %s after provisioning: %w", specs.OperatorUsername, err)
	}
	r.keep(uid, c, tok)
	r.api = c
	return nil
}

// loginAsOperator logs in with the operator Secret's password. A password still marked for
// change (left over from an interrupted provisioning) is "changed" to itself.
func (r *run) loginAsOperator(ctx context.Context, c *dittoapi.Client) (*dittoapi.Tokens, error) {
	password := string(r.secret.Data[specs.OperatorSecretKeyPassword])
	tok, err := c.Login(ctx, specs.OperatorUsername, password)
	if err != nil || !tok.User.MustChangePassword {
		return tok, err
	}
	return c.ChangeOwnPassword(ctx, password, password)
}

func (r *run) keep(uid types.UID, c *dittoapi.Client, tok *dittoapi.Tokens) {
	exp := tok.ExpiresAt
	if exp.IsZero() {
		exp = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	r.mu.Lock()
	r.sessions[uid] = &session{client: c, hc: r.hc, refresh: tok.RefreshToken, expires: exp}
	r.mu.Unlock()
}

// forgetSession drops the API session of a server.
func (s *Step) forgetSession(uid types.UID) {
	s.mu.Lock()
	delete(s.sessions, uid)
	s.mu.Unlock()
}

// provisionOperator logs in as admin and creates the operator account (or resets its
// password). The new password is written to the operator Secret first, so an interruption
// never leaves a password only the server knows. The admin password is never changed.
func (r *run) provisionOperator(ctx context.Context, base string, admin specs.SecretKey) error {
	adminPassword, err := r.adminPassword(ctx, admin)
	if err != nil {
		return err
	}
	ac := dittoapi.New(base, r.hc)
	if _, err := ac.Login(ctx, specs.DefaultAdminUser, adminPassword); err != nil {
		if dittoapi.IsUnauthorized(err) {
			return specs.Problemf(specs.ReasonAdminCredentialUnauthorized,
				"the DittoFS API refused the admin password from Secret %s key %q (was it changed out of band?); put the current password in the Secret; the operator retries when the Secret changes or in %s",
				admin.Name, admin.Key, adminAuthBackoff)
		}
		return err
	}
	password, err := specs.RandomString(32)
	if err != nil {
		return err
	}
	if err := r.writeSecret(ctx, map[string]string{
		specs.OperatorSecretKeyUsername: specs.OperatorUsername, specs.OperatorSecretKeyPassword: password,
	}, map[string]string{specs.AnnotationAdminPassword: specs.KeyedHash(password, adminPassword)}); err != nil {
		return err
	}
	_, err = ac.CreateUser(ctx, dittoapi.CreateUserRequest{
		Username: specs.OperatorUsername, Password: password, Role: specs.OperatorRole,
		DisplayName: "dittofs-operator (Kubernetes operator account)",
	})
	if dittoapi.IsConflict(err) {
		err = ac.ResetUserPassword(ctx, specs.OperatorUsername, password)
	}
	if err != nil {
		return fmt.Errorf("provisioning the operator account: %w", err)
	}
	r.deps.Recorder.Eventf(r.ds, corev1.EventTypeNormal, specs.EventOperatorAccountProvisioned,
		"Provisioned DittoFS user %s (role %s); its credentials are in Secret %s", specs.OperatorUsername, specs.OperatorRole, specs.OperatorSecretName(r.ds))
	return nil
}

// writeSecret creates or updates the operator Secret; data nil keeps the data, annotations are
// merged. r.secret holds the server's answer afterwards.
func (r *run) writeSecret(ctx context.Context, data, annotations map[string]string) error {
	secret := r.secret
	if secret.Name == "" {
		// No owner reference: the account lives in the server's database, which outlives the
		// DittoServer (its volumes are kept); a server created again with the name logs in with it.
		secret.ObjectMeta = metav1.ObjectMeta{Name: specs.OperatorSecretName(r.ds), Namespace: r.ds.Namespace, Labels: specs.CommonLabels(r.ds, "operator-credentials")}
		secret.Type = corev1.SecretTypeOpaque
	}
	if data != nil {
		secret.Data = map[string][]byte{}
		for k, v := range data {
			secret.Data[k] = []byte(v)
		}
	}
	for k, v := range annotations {
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		secret.Annotations[k] = v
	}
	var err error
	if secret.ResourceVersion == "" {
		err = r.deps.Client.Create(ctx, secret)
	} else {
		err = r.deps.Client.Update(ctx, secret)
	}
	if err != nil {
		return &k8sError{fmt.Errorf("writing Secret %s/%s: %w", r.ds.Namespace, secret.Name, err)}
	}
	return nil
}

// adminPassword reads the admin password from its Secret.
func (r *run) adminPassword(ctx context.Context, admin specs.SecretKey) (string, error) {
	secret := &corev1.Secret{}
	if err := r.deps.Secrets.Get(ctx, types.NamespacedName{Namespace: r.ds.Namespace, Name: admin.Name}, secret); err != nil {
		return "", &k8sError{fmt.Errorf("reading the admin Secret %s: %w", admin.Name, err)}
	}
	return string(secret.Data[admin.Key]), nil
}

// applyAdminPassword gives the server's admin the password of the admin Secret when the Secret
// changed (DittoFS reads DITTOFS_ADMIN_INITIAL_PASSWORD on first boot only, so a restart would
// change nothing). The operator sets it with its own account (role admin); DittoFS then asks
// the admin to change it at the next login, which the operator does at once with the same
// password, so the Secret's password is the admin's. Steady state costs no API call: the
// operator Secret records which password the server has.
func (r *run) applyAdminPassword(ctx context.Context, base string, admin specs.SecretKey) error {
	password, err := r.adminPassword(ctx, admin)
	if err != nil {
		return err
	}
	applied := specs.KeyedHash(string(r.secret.Data[specs.OperatorSecretKeyPassword]), password)
	if r.secret.Annotations[specs.AnnotationAdminPassword] == applied {
		return nil
	}
	if password == "" {
		return specs.Problemf(specs.ReasonAdminCredentialUnauthorized, "Secret %s key %q holds no admin password; put the admin password there", admin.Name, admin.Key)
	}
	ac := dittoapi.New(base, r.hc)
	tok, err := ac.Login(ctx, specs.DefaultAdminUser, password)
	if dittoapi.IsUnauthorized(err) {
		// A new password in the Secret: set it as the operator.
		if err := r.api.ResetUserPassword(ctx, specs.DefaultAdminUser, password); err != nil {
			return fmt.Errorf("setting the admin password from Secret %s: %w", admin.Name, err)
		}
		if tok, err = ac.Login(ctx, specs.DefaultAdminUser, password); err != nil {
			return fmt.Errorf("logging in as admin with the password just set: %w", err)
		}
		r.deps.Recorder.Eventf(r.ds, corev1.EventTypeNormal, specs.EventAdminPasswordChanged,
			"Set the admin password from Secret %s key %q through the DittoFS API (no restart)", admin.Name, admin.Key)
	}
	if err != nil {
		return err
	}
	if tok.User.MustChangePassword {
		if _, err := ac.ChangeOwnPassword(ctx, password, password); err != nil {
			return fmt.Errorf("confirming the admin password: %w", err)
		}
	}
	return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationAdminPassword: applied})
}
