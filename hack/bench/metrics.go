package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one Prometheus metric line: name, labels and value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads a Prometheus text endpoint and keeps the series whose names are wanted.
func scrape(client *http.Client, url string, wanted ...string) ([]sample, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseLine(line)
		if !ok {
			continue
		}
		for _, w := range wanted {
			if s.name == w {
				out = append(out, s)
				break
			}
		}
	}
	return out, sc.Err()
}

// parseLine parses `name{a="b",c="d"} value` (label values without escaped quotes, which is
// all the series used here have).
func parseLine(line string) (sample, bool) {
	s := sample{labels: map[string]string{}}
	var rest string
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return s, false
		}
		s.name = line[:i]
		for _, kv := range splitLabels(line[i+1 : j]) {
			if eq := strings.IndexByte(kv, '='); eq > 0 {
				s.labels[kv[:eq]] = strings.Trim(kv[eq+1:], `"`)
			}
		}
		rest = strings.TrimSpace(line[j+1:])
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return s, false
		}
		s.name, rest = f[0], f[1]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

func splitLabels(s string) []string {
	var out []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, strings.TrimSpace(s[start:]))
	}
	return out
}

// opMetrics is what the benchmark reads from the operator's /metrics.
type opMetrics struct {
	// Requests by "METHOD CODE" (rest_client_requests_total, all hosts).
	Requests map[string]float64
	// Reconciles by "controller result" (controller_runtime_reconcile_total).
	Reconciles map[string]float64
	// ReconcileErrors by controller (controller_runtime_reconcile_errors_total).
	ReconcileErrors map[string]float64
	HeapInuse       float64
	CPUSeconds      float64
}

func (m opMetrics) totalRequests() float64 {
	t := 0.0
	for _, v := range m.Requests {
		t += v
	}
	return t
}

var metricsHTTP = &http.Client{Timeout: 5 * time.Second}

func scrapeOperator(port int) (opMetrics, error) {
	ss, err := scrape(metricsHTTP, fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
		"rest_client_requests_total", "controller_runtime_reconcile_total",
		"controller_runtime_reconcile_errors_total", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total")
	m := opMetrics{Requests: map[string]float64{}, Reconciles: map[string]float64{}, ReconcileErrors: map[string]float64{}}
	if err != nil {
		return m, err
	}
	for _, s := range ss {
		switch s.name {
		case "rest_client_requests_total":
			m.Requests[s.labels["method"]+" "+s.labels["code"]] += s.value
		case "controller_runtime_reconcile_total":
			m.Reconciles[s.labels["controller"]+" "+s.labels["result"]] += s.value
		case "controller_runtime_reconcile_errors_total":
			m.ReconcileErrors[s.labels["controller"]] += s.value
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse = s.value
		case "process_cpu_seconds_total":
			m.CPUSeconds = s.value
		}
	}
	return m, nil
}

// metricsDelta is b - a, zero entries dropped.
type metricsDelta struct {
	Requests        map[string]int `json:"requestsByMethodCode"`
	RequestsTotal   int            `json:"requestsTotal"`
	Writes          int            `json:"writes"` // POST, PUT, PATCH, DELETE
	Reconciles      map[string]int `json:"reconcilesByControllerResult"`
	ReconcilesTotal int            `json:"reconcilesTotal"`
	ReconcileErrors map[string]int `json:"reconcileErrors,omitempty"`
}

func (a opMetrics) delta(b opMetrics) metricsDelta {
	d := metricsDelta{Requests: map[string]int{}, Reconciles: map[string]int{}, ReconcileErrors: map[string]int{}}
	for k, v := range b.Requests {
		if n := int(v - a.Requests[k] + 0.5); n > 0 {
			d.Requests[k] = n
			d.RequestsTotal += n
			switch strings.Fields(k)[0] {
			case "POST", "PUT", "PATCH", "DELETE":
				d.Writes += n
			}
		}
	}
	for k, v := range b.Reconciles {
		if n := int(v - a.Reconciles[k] + 0.5); n > 0 {
			d.Reconciles[k] = n
			d.ReconcilesTotal += n
		}
	}
	for k, v := range b.ReconcileErrors {
		if n := int(v - a.ReconcileErrors[k] + 0.5); n > 0 {
			d.ReconcileErrors[k] = n
		}
	}
	return d
}

// componentRequests sums rest_client_requests_total of a control-plane component (its
// /metrics is open on 127.0.0.1 through --authorization-always-allow-paths).
func componentRequests(port int) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback metrics of a throwaway cluster
	ss, err := scrape(c, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), "rest_client_requests_total", "rest_client_rate_limiter_duration_seconds_sum")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range ss {
		if s.name == "rest_client_rate_limiter_duration_seconds_sum" {
			out["throttledSeconds"] += s.value
			continue
		}
		out[s.labels["method"]] += s.value
	}
	return out, nil
}

// procStat is CPU and memory of a process from /proc.
type procStat struct {
	CPUSeconds float64
	RSS        int64 // bytes, VmRSS
	HWM        int64 // bytes, VmHWM (peak RSS since start)
	Anon       int64 // bytes, RssAnon (heap, stacks: the part that grows with the work)
	File       int64 // bytes, RssFile (mapped pages of the binary)
}

// clockTicks is USER_HZ: 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProc(pid int) (procStat, error) {
	var p procStat
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return p, err
	}
	// the command may contain spaces: fields start after the last ')'
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return p, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return p, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	p.CPUSeconds = (ut + st) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return p, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fs[1], 10, 64)
		switch fs[0] {
		case "VmRSS:":
			p.RSS = kb << 10
		case "VmHWM:":
			p.HWM = kb << 10
		case "RssAnon:":
			p.Anon = kb << 10
		case "RssFile:":
			p.File = kb << 10
		}
	}
	return p, nil
}

// rssSampler records the highest VmRSS seen between reset and max.
type rssSampler struct {
	mu   sync.Mutex
	peak int64
	stop chan struct{}
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if p, err := readProc(pid); err == nil {
					s.mu.Lock()
					if p.RSS > s.peak {
						s.peak = p.RSS
					}
					s.mu.Unlock()
				}
			}
		}
	}()
	return s
}

func (s *rssSampler) reset() {
	s.mu.Lock()
	s.peak = 0
	s.mu.Unlock()
}

func (s *rssSampler) max() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *rssSampler) close() { close(s.stop) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// percentile is the nearest-rank percentile of xs (p in 0..100).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return s[rank]
}
