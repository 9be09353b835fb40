package testenv

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// RequestCounter counts the operator's API requests by verb, path (names elided) and code.
type RequestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap installs the counter on a rest.Config.
func (c *RequestCounter) Wrap(cfg *rest.Config) {
	c.counts = map[string]int{}
	prev := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			if req.URL.Query().Get("watch") != "true" {
				c.mu.Lock()
				c.counts[fmt.Sprintf("%s %s %d", req.Method, shape(req.URL.Path), code)]++
				c.mu.Unlock()
			}
			return resp, err
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// shape replaces namespace and object names in a path, so counts group by resource.
func shape(p string) string {
	parts := strings.Split(p, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "namespaces" && i+1 < len(parts) {
			parts[i+1] = "NS"
			if i+3 < len(parts) {
				parts[i+3] = "NAME"
			}
		}
	}
	return strings.Join(parts, "/")
}

// Total is the number of requests counted so far.
func (c *RequestCounter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// Reset forgets what was counted.
func (c *RequestCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = map[string]int{}
}

// String lists the counts, most frequent first.
func (c *RequestCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.counts))
	for k := range c.counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return c.counts[keys[i]] > c.counts[keys[j]] || (c.counts[keys[i]] == c.counts[keys[j]] && keys[i] < keys[j])
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%4d %s\n", c.counts[k], k)
	}
	return b.String()
}
