package controlplane

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// APIRequestDuration is the time of the operator's calls to DittoFS REST APIs. Labels are
// bounded: endpoint is the first path segment after /api/v1/ (auth, users, adapters, store,
// shares, snapshot-policies; anything else is "other"), code the status class or "error"
// when no answer came (refused, timed out).
var APIRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "dittofs_api_request_duration_seconds",
	Help:    "Time of the operator's calls to DittoFS servers' REST APIs, by endpoint, method and result (2xx, 3xx, 4xx, 5xx, or error when no answer came).",
	Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
}, []string{"endpoint", "method", "code"})

func init() {
	metrics.Registry.MustRegister(APIRequestDuration)
}

// knownEndpoints are the API's first path segments the operator calls.
var knownEndpoints = map[string]bool{
	"auth": true, "users": true, "adapters": true, "store": true, "shares": true, "snapshot-policies": true,
}

// endpointOf maps a request path to its bounded endpoint label.
func endpointOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return "other"
	}
	first, _, _ := strings.Cut(rest, "/")
	if knownEndpoints[first] {
		return first
	}
	return "other"
}

// instrumented observes every request of next in APIRequestDuration.
type instrumented struct{ next http.RoundTripper }

func (t instrumented) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode/100) + "xx"
	}
	APIRequestDuration.WithLabelValues(endpointOf(req.URL.Path), req.Method, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// withMetrics returns a copy of hc whose requests are observed.
func withMetrics(hc *http.Client) *http.Client {
	out := *hc
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	out.Transport = instrumented{next: next}
	return &out
}
