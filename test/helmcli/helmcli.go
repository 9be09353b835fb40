// Package helmcli runs the pinned Helm CLI (make helm builds it into bin/tools) for the
// operator chart's tests.
package helmcli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// Version is the Helm CLI the chart is tested with: the Helm library helm-operator-plugins
// renders the operand chart with (go.mod).
const Version = "v3.21.1"

// Chart is the operator chart, relative to the repository root.
const Chart = "helm-charts/dittofs-operator"

// Run runs helm from the repository root and returns its combined output.
func Run(args ...string) (string, error) {
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "tools", "helm-"+Version)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s missing: run make helm", bin)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = apiserver.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Must is Run that fails the test on an error.
func Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
