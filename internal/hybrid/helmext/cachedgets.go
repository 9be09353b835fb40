package helmext

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Helm reads each object of a release by name before writing it: an install checks that none
// exists yet (a 404 each), an upgrade reads the live object its patch is computed against. The
// manager's cache already holds every object the chart renders (they carry the operator's
// part-of label and are watched for drift), so those GETs are answered from it: an install of a
// server costs no read. Every other request goes to the API server.
//
// What the cache answers is at most as old as its watch. Two consequences, both safe:
//   - an object of the same name that is not the operator's (no part-of label) is not in the
//     cache: Helm then creates it, the API server answers AlreadyExists and the release fails
//     with that message; the object is not touched (as before, when Helm refused to adopt it);
//   - an object created a moment ago may not be in the cache yet: an upgrade then creates it
//     and fails the same way, and the next reconcile, with the cache caught up, patches it.

// cachedKinds are the chart's kinds by the path segment of their REST resource.
var cachedKinds = map[string]struct {
	gvk schema.GroupVersionKind
	new func() client.Object
}{
	"/api/v1/services":   {corev1.SchemeGroupVersion.WithKind("Service"), func() client.Object { return &corev1.Service{} }},
	"/api/v1/configmaps": {corev1.SchemeGroupVersion.WithKind("ConfigMap"), func() client.Object { return &corev1.ConfigMap{} }},
	"/apis/networking.k8s.io/v1/networkpolicies": {networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
		func() client.Object { return &networkingv1.NetworkPolicy{} }},
}

// objectPath splits /api/v1/namespaces/<ns>/<resource>/<name> (or /apis/<group>/<version>/...)
// into the resource's collection path without the namespace, the namespace and the name.
func objectPath(p string) (collection, namespace, name string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	var prefix []string
	switch {
	case len(parts) == 6 && parts[0] == "api" && parts[2] == "namespaces":
		prefix, parts = parts[:2], parts[2:]
	case len(parts) == 7 && parts[0] == "apis" && parts[3] == "namespaces":
		prefix, parts = parts[:3], parts[3:]
	default:
		return "", "", "", false
	}
	if parts[1] == "" || parts[3] == "" {
		return "", "", "", false
	}
	return "/" + strings.Join(append(prefix, parts[2]), "/"), parts[1], parts[3], true
}

// cachedGetTransport answers GETs by name of cachedKinds from cache (see above).
type cachedGetTransport struct {
	next  http.RoundTripper
	cache client.Reader
}

func (t *cachedGetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.RawQuery != "" {
		return t.next.RoundTrip(req)
	}
	collection, namespace, name, ok := objectPath(req.URL.Path)
	kind, known := cachedKinds[collection]
	if !ok || !known {
		return t.next.RoundTrip(req)
	}
	obj := kind.new()
	err := t.cache.Get(req.Context(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
	switch {
	case err == nil:
		obj.GetObjectKind().SetGroupVersionKind(kind.gvk)
		return jsonResponse(req, http.StatusOK, obj)
	case apierrors.IsNotFound(err):
		gr := schema.GroupResource{Group: kind.gvk.Group, Resource: collection[strings.LastIndex(collection, "/")+1:]}
		status := apierrors.NewNotFound(gr, name).ErrStatus
		status.APIVersion, status.Kind = "v1", "Status"
		return jsonResponse(req, http.StatusNotFound, &status)
	default: // e.g. a namespace the cache does not watch
		return t.next.RoundTrip(req)
	}
}

func jsonResponse(req *http.Request, code int, body any) (*http.Response, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode:    code,
		Status:        http.StatusText(code),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": []string{"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(data)),
		ContentLength: int64(len(data)),
		Request:       req,
	}, nil
}
