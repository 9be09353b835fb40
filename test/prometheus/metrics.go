package prometheus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// PrometheusModuleVersion is the github.com/prometheus/prometheus version promtool is built
// from (hack/build-promtool.sh).
const PrometheusModuleVersion = "v0.316.0"

// Paths of the shipped monitoring files, relative to the repository root.
const (
	RulePath      = "config/prometheus/prometheusrule.yaml"
	DashboardPath = "config/grafana/dittofs-dashboard.json"
)

// External are the metrics the alerts and the dashboard take from other exporters, and which
// exporter: the e2e test cannot capture them (no kubelet, no kube-state-metrics there).
var External = map[string]string{
	"kube_pod_container_status_restarts_total": "kube-state-metrics",
	"kubelet_volume_stats_available_bytes":     "the kubelet",
	"kubelet_volume_stats_capacity_bytes":      "the kubelet",
}

type ruleFile struct {
	Spec struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// RulesFile is the PrometheusRule's spec as a Prometheus rules file.
func RulesFile(root string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, RulePath))
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", RulePath, err)
	}
	spec, ok := obj["spec"]
	if !ok {
		return nil, fmt.Errorf("%s: no spec", RulePath)
	}
	return yaml.Marshal(spec)
}

func rules(root string) (*ruleFile, error) {
	b, err := os.ReadFile(filepath.Join(root, RulePath))
	if err != nil {
		return nil, err
	}
	rf := &ruleFile{}
	if err := yaml.Unmarshal(b, rf); err != nil {
		return nil, fmt.Errorf("%s: %w", RulePath, err)
	}
	return rf, nil
}

// Alerts are the names of the alerts.
func Alerts(root string) ([]string, error) {
	rf, err := rules(root)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range rf.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r.Alert)
			}
		}
	}
	return out, nil
}

// DashboardQueries are the PromQL expressions of the dashboard's panels.
func DashboardQueries(root string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, DashboardPath))
	if err != nil {
		return nil, err
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		return nil, fmt.Errorf("%s: %w", DashboardPath, err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, t := range p.Targets {
			if t.Expr != "" {
				out = append(out, t.Expr)
			}
		}
	}
	return out, nil
}

// metricRE matches the metric names of the families the files use.
var metricRE = regexp.MustCompile(`\b(?:dittofs|controller_runtime|workqueue|rest_client|kube|kubelet)_[a-z0-9_]+\b`)

// histogramSuffix is what a query adds to a histogram's family name.
var histogramSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)

func metricNames(expr string) []string { return metricRE.FindAllString(expr, -1) }

// ReferencedMetrics are the metric families the alerts and the dashboard query (histogram
// suffixes removed), each with where it is used.
func ReferencedMetrics(root string) (map[string][]string, error) {
	out := map[string][]string{}
	rf, err := rules(root)
	if err != nil {
		return nil, err
	}
	for _, g := range rf.Spec.Groups {
		for _, r := range g.Rules {
			for _, m := range metricNames(r.Expr) {
				out[m] = append(out[m], "alert "+r.Alert)
			}
		}
	}
	queries, err := DashboardQueries(root)
	if err != nil {
		return nil, err
	}
	for _, q := range queries {
		for _, m := range metricNames(q) {
			out[m] = append(out[m], "dashboard")
		}
	}
	return out, nil
}

// Missing lists the referenced families that neither the exposition texts (the /metrics
// output of the sources, concatenated) nor External have.
func Missing(referenced map[string][]string, exposition string) []string {
	have := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		have[name] = true
		have[histogramSuffix.ReplaceAllString(name, "")] = true
	}
	var out []string
	for m, uses := range referenced {
		base := histogramSuffix.ReplaceAllString(m, "")
		if have[m] || have[base] || External[m] != "" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s)", m, strings.Join(uses, ", ")))
	}
	sort.Strings(out)
	return out
}
