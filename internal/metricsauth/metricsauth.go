// Package metricsauth protects the metrics endpoint the way controller-runtime's
// filters.WithAuthenticationAndAuthorization does: the bearer token is checked with a
// TokenReview, then the caller's access to the URL (a non-resource URL such as /metrics, verb
// from the HTTP method) with a SubjectAccessReview. It uses only the client-go typed clients:
// the controller-runtime filter pulls in k8s.io/apiserver and CEL, about 12 MB of binary,
// which on Linux is about as much resident memory (docs/PERFORMANCE.md, "Memory budget").
package metricsauth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Cache lifetimes of a decision, as the controller-runtime filter's (allowed 1 min for the
// token, 5 min for the access; denied 30 s), and the bound of the cache.
const (
	AllowTTL    = time.Minute
	DenyTTL     = 30 * time.Second
	reviewLimit = 10 * time.Second
	maxEntries  = 1024
)

// Filter is a metricsserver.Options.FilterProvider.
func Filter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authnclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authzclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{Tokens: authn.TokenReviews(), Access: authz.SubjectAccessReviews()}
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return a.Wrap(log, next), nil
	}, nil
}

// Authorizer checks requests with TokenReviews and SubjectAccessReviews and caches decisions.
type Authorizer struct {
	Tokens authnclient.TokenReviewInterface
	Access authzclient.SubjectAccessReviewInterface

	mu    sync.Mutex
	cache map[[sha256.Size]byte]decision
}

type decision struct {
	code    int // http.StatusOK, StatusUnauthorized or StatusForbidden
	user    string
	expires time.Time
}

// Wrap returns next behind the checks.
func (a *Authorizer) Wrap(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		d, err := a.decide(req)
		switch {
		case err != nil:
			log.Error(err, "checking a metrics request")
			http.Error(w, "authentication or authorization check failed", http.StatusInternalServerError)
		case d.code == http.StatusUnauthorized:
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		case d.code == http.StatusForbidden:
			log.V(4).Info("metrics request denied", "user", d.user, "path", req.URL.Path)
			http.Error(w, fmt.Sprintf("Authorization denied for user %s", d.user), http.StatusForbidden)
		default:
			next.ServeHTTP(w, req)
		}
	})
}

func (a *Authorizer) decide(req *http.Request) (decision, error) {
	token, ok := bearerToken(req.Header.Get("Authorization"))
	if !ok {
		return decision{code: http.StatusUnauthorized}, nil
	}
	verb := strings.ToLower(req.Method)
	key := sha256.Sum256([]byte(verb + "\x00" + req.URL.Path + "\x00" + token))
	now := time.Now()
	a.mu.Lock()
	d, hit := a.cache[key]
	a.mu.Unlock()
	if hit && now.Before(d.expires) {
		return d, nil
	}

	ctx, cancel := context.WithTimeout(req.Context(), reviewLimit)
	defer cancel()
	tr, err := a.Tokens.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return a.remember(key, decision{code: http.StatusUnauthorized, expires: now.Add(DenyTTL)}), nil
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	sar, err := a.Access.Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
		NonResourceAttributes: &authzv1.NonResourceAttributes{Path: req.URL.Path, Verb: verb},
	}}, metav1.CreateOptions{})
	if err != nil {
		return decision{}, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return a.remember(key, decision{code: http.StatusForbidden, user: u.Username, expires: now.Add(DenyTTL)}), nil
	}
	return a.remember(key, decision{code: http.StatusOK, user: u.Username, expires: now.Add(AllowTTL)}), nil
}

func (a *Authorizer) remember(key [sha256.Size]byte, d decision) decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil || len(a.cache) >= maxEntries {
		a.cache = map[[sha256.Size]byte]decision{}
	}
	a.cache[key] = d
	return d
}

// bearerToken parses "Bearer <token>" (scheme case-insensitive).
func bearerToken(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}
