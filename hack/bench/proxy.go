package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// tracer is a TLS (HTTP/2) reverse proxy on 127.0.0.1 between the operator and the API server.
// It authenticates upstream with the cluster's admin credentials and records every request the
// operator makes by verb, resource, flags (dry-run, field manager, Helm release Secret) and
// response code. rest_client_requests_total only has method and code; the tracer says which
// object kinds the requests go to and who (Go controller, Helm storage, Helm kube client,
// status writers, events) makes them. It adds one loopback hop to every request.
type tracer struct {
	mu       sync.Mutex
	counts   map[string]int
	perSec   map[int64]int // non-watch requests per wall-clock second
	last     time.Time     // time of the last non-watch request
	srv      *http.Server
	ln       net.Listener
	certPEM  []byte
	upstream *url.URL
	// log, when set, gets one line per request (time, verb, path, query, code)
	log   *bufio.Writer
	logF  *os.File
	start time.Time
}

func startTracer(cfg *rest.Config) (*tracer, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	t := &tracer{counts: map[string]int{}, perSec: map[int64]int{}, certPEM: certPEM, upstream: target}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport:     rt,
		FlushInterval: -1, // watches stream
		ErrorLog:      nil,
	}
	t.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.srv = &http.Server{
		Handler:           t.record(proxy),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
	go func() { _ = t.srv.ServeTLS(t.ln, "", "") }()
	return t, nil
}

func (t *tracer) addr() string { return t.ln.Addr().String() }

// logTo writes every request to path from now on (replacing an earlier log file).
func (t *tracer) logTo(path string, start time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeLogLocked()
	t.logF, t.log, t.start = f, bufio.NewWriterSize(f, 1<<16), start
	return nil
}

func (t *tracer) closeLogLocked() {
	if t.logF != nil {
		_ = t.log.Flush()
		_ = t.logF.Close()
		t.logF, t.log = nil, nil
	}
}

// mark writes a phase marker into the request log.
func (t *tracer) mark(what string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		_, _ = fmt.Fprintf(t.log, "%9.3f ---- %s\n", time.Since(t.start).Seconds(), what)
	}
}

func (t *tracer) close() {
	if t != nil && t.srv != nil {
		_ = t.srv.Close()
		t.mu.Lock()
		t.closeLogLocked()
		t.mu.Unlock()
	}
}

// writeKubeconfig writes a kubeconfig that points at the tracer (no client credentials: the
// tracer holds them).
func (t *tracer) writeKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: "https://" + t.addr(), CertificateAuthorityData: t.certPEM}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	cfg.CurrentContext = "bench"
	return clientcmd.WriteToFile(*cfg, path)
}

type statusRecorder struct {
	http.ResponseWriter
	onHeader func(code int)
	done     bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.done {
		s.done = true
		s.onHeader(code)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.done {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (t *tracer) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Method == http.MethodPost && r.Body != nil && strings.HasSuffix(r.URL.Path, "/secrets") {
			body, _ = io.ReadAll(io.LimitReader(r.Body, 4<<20))
			_ = r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		key, watch := classify(r, body)
		rec := &statusRecorder{ResponseWriter: w, onHeader: func(code int) {
			now := time.Now()
			t.mu.Lock()
			t.counts[fmt.Sprintf("%s %d", key, code)]++
			if !watch {
				t.perSec[now.Unix()]++
				t.last = now
			}
			if t.log != nil {
				q := r.URL.RawQuery
				if q != "" {
					q = "?" + q
				}
				_, _ = fmt.Fprintf(t.log, "%9.3f %d %s %s%s\n", now.Sub(t.start).Seconds(), code, r.Method, r.URL.Path, q)
			}
			t.mu.Unlock()
		}}
		next.ServeHTTP(rec, r)
		if !rec.done { // the upstream failed before any header (the proxy writes 502 itself)
			rec.WriteHeader(http.StatusBadGateway)
		}
	})
}

// classify names a request "VERB resource[/subresource] [flags]": VERB is GET, LIST, WATCH,
// CREATE, UPDATE, PATCH, APPLY (server-side apply), DELETE; flags are dryRun, the field manager
// of server-side applies and "helm-release" for Helm's release Secrets.
func classify(r *http.Request, body []byte) (string, bool) {
	q := r.URL.Query()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /api/v1/..., /apis/<group>/<version>/...
	var group string
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, rest = parts[1], parts[3:]
	default:
		return fmt.Sprintf("%s discovery(%s)", r.Method, r.URL.Path), false
	}
	if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) > 2 {
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return fmt.Sprintf("%s discovery(%s)", r.Method, r.URL.Path), false
	}
	resource := rest[0]
	if group != "" {
		resource += "." + group
	}
	named := len(rest) >= 2
	if len(rest) >= 3 {
		resource += "/" + rest[2]
	}
	watch := q.Get("watch") == "true" || q.Get("watch") == "1"
	verb := r.Method
	switch r.Method {
	case http.MethodGet:
		switch {
		case watch:
			verb = "WATCH"
		case named:
			verb = "GET"
		default:
			verb = "LIST"
		}
	case http.MethodPost:
		verb = "CREATE"
	case http.MethodPut:
		verb = "UPDATE"
	case http.MethodPatch:
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/apply-patch") {
			verb = "APPLY"
		}
	}
	var flags []string
	if resource == "secrets" {
		helm := named && strings.HasPrefix(rest[1], "sh.helm.release.v1.") ||
			strings.Contains(q.Get("labelSelector"), "owner=helm") ||
			bytes.Contains(body, []byte(`"name":"sh.helm.release.v1.`))
		if helm {
			flags = append(flags, "helm-release")
		}
	}
	if q.Get("dryRun") != "" {
		flags = append(flags, "dryRun")
	}
	if fm := q.Get("fieldManager"); fm != "" && verb != "GET" && verb != "LIST" {
		flags = append(flags, "fieldManager="+fm)
	}
	if q.Get("labelSelector") != "" && verb == "LIST" && resource != "secrets" {
		flags = append(flags, "selector")
	}
	key := verb + " " + resource
	if len(flags) > 0 {
		key += " [" + strings.Join(flags, ",") + "]"
	}
	return key, watch
}

// traceSnapshot is a copy of the counters at one moment.
type traceSnapshot struct {
	counts map[string]int
	perSec map[int64]int
	last   time.Time
}

func (t *tracer) snapshot() traceSnapshot {
	if t == nil {
		return traceSnapshot{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := traceSnapshot{counts: make(map[string]int, len(t.counts)), perSec: make(map[int64]int, len(t.perSec)), last: t.last}
	for k, v := range t.counts {
		s.counts[k] = v
	}
	for k, v := range t.perSec {
		s.perSec[k] = v
	}
	return s
}

// traceDelta is what happened between two snapshots.
type traceDelta struct {
	// Requests by "VERB resource [flags] code", watches included (marked WATCH).
	Requests map[string]int `json:"requests"`
	// Total excludes WATCH requests; Writes are its CREATE, APPLY, UPDATE, PATCH and DELETE.
	Total  int `json:"total"`
	Writes int `json:"writes"`
	// PeakPerSecond is the highest number of non-watch requests in one wall-clock second.
	PeakPerSecond int `json:"peakPerSecond"`
}

func (a traceSnapshot) delta(b traceSnapshot) *traceDelta {
	if a.counts == nil && b.counts == nil {
		return nil
	}
	d := &traceDelta{Requests: map[string]int{}}
	for k, v := range b.counts {
		if n := v - a.counts[k]; n > 0 {
			d.Requests[k] = n
			if !strings.HasPrefix(k, "WATCH ") {
				d.Total += n
			}
			switch strings.Fields(k)[0] {
			case "CREATE", "APPLY", "UPDATE", "PATCH", "DELETE":
				d.Writes += n
			}
		}
	}
	for sec, v := range b.perSec {
		if n := v - a.perSec[sec]; n > d.PeakPerSecond {
			d.PeakPerSecond = n
		}
	}
	return d
}

// apiRequests are the requests that reached the API server and the writes among them: the
// tracer's counts when it ran. client-go's rest_client_requests_total also counts the reads
// the operator answers from its cache below the client (Helm's reads of the chart's objects),
// so it is the fallback without the tracer.
func apiRequests(m metricsDelta, t *traceDelta) (total, writes int) {
	if t != nil {
		return t.Total, t.Writes
	}
	return m.RequestsTotal, m.Writes
}

// sortedKeys orders a request map by count, then name.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

func selfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "dittofs-bench-tracer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}
