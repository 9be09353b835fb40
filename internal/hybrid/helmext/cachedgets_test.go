package helmext

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestObjectPath(t *testing.T) {
	for _, tc := range []struct {
		path                 string
		collection, ns, name string
		ok                   bool
	}{
		{"/api/v1/namespaces/a/services/s-file", "/api/v1/services", "a", "s-file", true},
		{"/apis/networking.k8s.io/v1/namespaces/a/networkpolicies/s", "/apis/networking.k8s.io/v1/networkpolicies", "a", "s", true},
		{"/api/v1/namespaces/a/services", "", "", "", false},           // a list
		{"/api/v1/namespaces/a/services/s/status", "", "", "", false},  // a subresource
		{"/api/v1/namespaces/a", "", "", "", false},                    // the namespace
		{"/apis/apps/v1/namespaces/a/statefulsets", "", "", "", false}, // a list
		{"/api/v1/namespaces//services/s", "", "", "", false},          // no namespace
	} {
		c, ns, name, ok := objectPath(tc.path)
		assert.Equal(t, tc.ok, ok, tc.path)
		assert.Equal(t, []string{tc.collection, tc.ns, tc.name}, []string{c, ns, name}, tc.path)
	}
}

// recordingTransport is the API server behind the cache: it records what reaches it.
type recordingTransport struct{ paths []string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.paths = append(r.paths, req.Method+" "+req.URL.Path)
	return jsonResponse(req, http.StatusOK, &corev1.ServiceList{TypeMeta: metav1.TypeMeta{Kind: "ServiceList", APIVersion: "v1"}})
}

// TestCachedGetTransport: a client-go client (as Helm's) reads the chart's objects by name from
// the cache, typed and with NotFound as the API server would answer; anything else reaches the
// API server.
func TestCachedGetTransport(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "s-file", ResourceVersion: "7"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.7"}}
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "s"}}
	cache := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(svc, np).Build()
	api := &recordingTransport{}
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	cfg.Wrap(func(http.RoundTripper) http.RoundTripper { return &cachedGetTransport{next: api, cache: cache} })
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	ctx := context.Background()

	got, err := cs.CoreV1().Services("a").Get(ctx, "s-file", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.7", got.Spec.ClusterIP)
	gotNP, err := cs.NetworkingV1().NetworkPolicies("a").Get(ctx, "s", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "s", gotNP.Name)

	_, err = cs.CoreV1().ConfigMaps("a").Get(ctx, "s-config", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "got %v", err)
	assert.Contains(t, err.Error(), `configmaps "s-config" not found`)
	assert.Empty(t, api.paths, "answered from the cache")

	_, err = cs.CoreV1().Services("a").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	_, _ = cs.CoreV1().Secrets("a").Get(ctx, "s-jwt", metav1.GetOptions{})
	_, _ = cs.CoreV1().Services("a").Get(ctx, "s-file", metav1.GetOptions{ResourceVersion: "0"})
	assert.Equal(t, []string{"GET /api/v1/namespaces/a/services", "GET /api/v1/namespaces/a/secrets/s-jwt", "GET /api/v1/namespaces/a/services/s-file"},
		api.paths, "lists, other kinds and reads with options go to the API server")
}
