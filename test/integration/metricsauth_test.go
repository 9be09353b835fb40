package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/internal/metricsauth"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestMetricsAuth: the metrics endpoint answers only callers whose token the API server
// authenticates and who may GET the URL (config/rbac/metrics_reader_role.yaml grants it),
// checked by the real API server's TokenReview, RBAC and SubjectAccessReview.
func TestMetricsAuth(t *testing.T) {
	hc, err := rest.HTTPClientFor(env.Config)
	require.NoError(t, err)
	filter, err := metricsauth.Filter(env.Config, hc)
	require.NoError(t, err)
	h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprint(w, "the metrics")
	}))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	ns := newNamespace(t)
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		require.NoError(t, k8s.Create(ctx(), sa))
		tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}
		require.NoError(t, k8s.SubResource("token").Create(ctx(), sa, tr))
		require.NotEmpty(t, tr.Status.Token)
		return tr.Status.Token
	}
	scraper, stranger := token("scraper"), token("stranger")
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	require.NoError(t, k8s.Create(ctx(), role))
	require.NoError(t, k8s.Create(ctx(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
	}))

	// RBAC reaches the authorizer through its informer: wait for it before the filter's first
	// (cached) decision.
	testenv.Eventually(t, "the binding in effect", func() error {
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:                  "system:serviceaccount:" + ns + ":scraper",
			NonResourceAttributes: &authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}
		if err := k8s.Create(ctx(), sar); err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("not allowed yet: %s", sar.Status.Reason)
		}
		return nil
	})

	call := func(method, path, authorization string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		what, method, path, auth string
		code                     int
	}{
		{"no token", http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"not a bearer token", http.MethodGet, "/metrics", "Basic " + scraper, http.StatusUnauthorized},
		{"a token the API server does not know", http.MethodGet, "/metrics", "Bearer not-a-token", http.StatusUnauthorized},
		{"authenticated, no grant", http.MethodGet, "/metrics", "Bearer " + stranger, http.StatusForbidden},
		{"granted", http.MethodGet, "/metrics", "Bearer " + scraper, http.StatusOK},
		{"granted, cached", http.MethodGet, "/metrics", "bearer " + scraper, http.StatusOK},
		{"granted another path only", http.MethodGet, "/debug", "Bearer " + scraper, http.StatusForbidden},
		{"granted another verb only", http.MethodPost, "/metrics", "Bearer " + scraper, http.StatusForbidden},
	} {
		code, body := call(c.method, c.path, c.auth)
		assert.Equal(t, c.code, code, "%s: %s", c.what, body)
		if c.code == http.StatusOK {
			assert.Equal(t, "the metrics", body, c.what)
		} else {
			assert.NotContains(t, body, "the metrics", c.what)
		}
	}
}
