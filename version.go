package main

import (
	_ "embed"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// versionFile is the operator's release version (make release VERSION=x.y.z writes it); the
// bundle, the catalog and the image tag carry the same one.
//
//go:embed VERSION
var versionFile string

// Version is the operator's release version, e.g. "0.1.0".
func Version() string { return strings.TrimSpace(versionFile) }

// buildCommit is set at link time by make build and make docker-build (-X main.buildCommit).
var buildCommit string

// commit is the VCS revision the binary was built from: buildCommit, else Go's VCS stamp, else
// "unknown".
func commit() string {
	if buildCommit != "" {
		return buildCommit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// versionLine is what --version prints.
func versionLine() string {
	return fmt.Sprintf("dittofs-operator %s (commit %s, %s)", Version(), commit(), runtime.Version())
}

// buildInfo is dittofs_operator_build_info: always 1, its labels say what runs.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dittofs_operator_build_info",
		Help: "Always 1; the labels are the operator's version, the commit it was built from and its Go version.",
	}, []string{"version", "commit", "go_version"})
	g.WithLabelValues(Version(), commit(), runtime.Version()).Set(1)
	return g
}
