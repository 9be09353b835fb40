//go:build linux

package conformance

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// DittoFSVersion is the server version the operator targets.
const DittoFSVersion = apiserver.DittoFSVersion

var (
	// repoRoot is the module root (two levels above this package).
	repoRoot string
	// dfsBin is the dfs binary built from the Go module proxy by hack/build-dittofs.sh.
	dfsBin string
	// useNetns is true when every dfs can run in its own network namespace (root, unshare,
	// nsenter, ip). Otherwise the suite falls back to overriding only the bind hosts.
	useNetns bool
	// fallbackReason says why the network-namespace mode is off.
	fallbackReason string
)

func TestMain(m *testing.M) {
	var err error
	repoRoot, err = filepath.Abs(filepath.Join("..", ".."))
	if err == nil {
		_, err = os.Stat(filepath.Join(repoRoot, "go.mod"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: cannot find the module root:", err)
		os.Exit(1)
	}
	start := time.Now()
	dir, err := buildDittoFS()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: building dfs", DittoFSVersion, "failed:", err)
		os.Exit(1)
	}
	dfsBin = filepath.Join(dir, "dfs")
	fmt.Printf("conformance: dfs %s at %s (%s)\n", DittoFSVersion, dfsBin, time.Since(start).Round(time.Millisecond))

	useNetns, fallbackReason = netnsAvailable()
	if useNetns {
		fmt.Println("conformance: each dfs runs in its own network namespace")
	} else {
		fmt.Printf("conformance: FALLBACK (no network namespaces: %s): dfs runs in the host network with "+
			"DITTOFS_CONTROLPLANE_HOST/DITTOFS_METRICS_HOST=127.0.0.1 added to the pod env (the only difference from "+
			"the pod), probes go to 127.0.0.1, the NFS/SMB adapters still bind 0.0.0.0:12049/1445 on the host, "+
			"and cases run one at a time\n", fallbackReason)
	}
	os.Exit(m.Run())
}

// buildDittoFS returns the directory holding dfs and dfsctl, building them with
// hack/build-dittofs.sh when they are missing (the script prints the directory last).
func buildDittoFS() (string, error) {
	dir := filepath.Join(repoRoot, "bin", "dittofs", DittoFSVersion)
	stamp, _ := os.ReadFile(filepath.Join(dir, ".version"))
	if isExecutable(filepath.Join(dir, "dfs")) && strings.TrimSpace(string(stamp)) == DittoFSVersion {
		return dir, nil
	}
	fmt.Println("conformance: building dfs", DittoFSVersion, "with hack/build-dittofs.sh (cold: several minutes)")
	cmd := exec.Command("bash", filepath.Join(repoRoot, "hack", "build-dittofs.sh"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "DITTOFS_VERSION="+DittoFSVersion)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir = strings.TrimSpace(lines[len(lines)-1])
	if !isExecutable(filepath.Join(dir, "dfs")) {
		return "", fmt.Errorf("the script printed %q, which holds no dfs", dir)
	}
	return dir, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
