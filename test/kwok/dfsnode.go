package kwok

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// DFSNodeName is the Node hack/dfsnode registers; DFSNodeLabel and DFSNodeTaint place a pod
// there (a DittoServer's spec.nodeSelector and spec.tolerations).
const (
	DFSNodeName  = "dfs-node"
	DFSNodeLabel = "dittofs.dittofs.com/dfs-node"
)

// OnDFSNode places a server's pod on the dfsnode: the node selector and the toleration of its
// taint.
func OnDFSNode() (map[string]string, []corev1.Toleration) {
	return map[string]string{DFSNodeLabel: "true"},
		[]corev1.Toleration{{Key: DFSNodeLabel, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
}

// BuildDFSNode builds bin/dfsnode (hack/dfsnode, its own Go module) and returns its path; a
// no-op when it is up to date.
func BuildDFSNode(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(root, "bin", "dfsnode")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(root, "hack", "dfsnode")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building bin/dfsnode:\n%s", out)
	return bin
}

// DFSNodeOptions say how to run bin/dfsnode.
type DFSNodeOptions struct {
	Binary, Kubeconfig string
	// StateDir holds the pods' roots and logs (removed by the caller).
	StateDir string
	// PodIPPrefix: the pods' addresses (three octets of 127.0.0.0/8), one per node on a machine.
	PodIPPrefix string
	// Forwards are podAddr=hostAddr pairs (--forward).
	Forwards []string
	// Log is the file stdout and stderr go to.
	Log string
}

// DFSNode is bin/dfsnode running as a subprocess.
type DFSNode struct {
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// StartDFSNode starts bin/dfsnode with the real dfs for /app/dfs (bin/dittofs/<version>/dfs) and
// registers its stop (SIGTERM: it stops its pods) with t.Cleanup. It skips the test when dfs is
// missing or the test does not run as root.
func StartDFSNode(t testing.TB, root string, o DFSNodeOptions) *DFSNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dfsnode runs each pod in its own network and mount namespace: it needs root")
	}
	dfs := filepath.Join(root, "bin", "dittofs", apiserver.DittoFSVersion, "dfs")
	if _, err := os.Stat(dfs); err != nil {
		t.Skipf("%s is missing: build it with `make dittofs`", dfs)
	}
	args := []string{"--kubeconfig", o.Kubeconfig, "--state-dir", o.StateDir, "--pod-ip-prefix", o.PodIPPrefix,
		"--bin", specs.DittoFSBinary + "=" + dfs}
	for _, f := range o.Forwards {
		args = append(args, "--forward", f)
	}
	logFile, err := os.Create(o.Log)
	require.NoError(t, err)
	cmd := exec.Command(o.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	require.NoError(t, cmd.Start())
	n := &DFSNode{Cmd: cmd, Log: o.Log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(n.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-n.done
		}
		if t.Failed() {
			t.Logf("dfsnode log tail (%s):\n%s", o.Log, tail(o.Log, 40))
		}
	})
	return n
}

// PodLog is the log of a pod's container on the dfsnode.
func (o DFSNodeOptions) PodLog(namespace, pod, container string) string {
	return filepath.Join(o.StateDir, "pods", namespace+"_"+pod, container+".log")
}

// Exited reports whether the process has exited.
func (n *DFSNode) Exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// PodIPPrefix is a per-process loopback prefix for a dfsnode (127.<64-127>.<pid%256>), so
// clusters of concurrent test processes do not share pod addresses.
func PodIPPrefix() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d", 64+(pid>>8)%64, pid%256)
}
