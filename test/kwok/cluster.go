// Package kwok drives a local kwok cluster (kube-apiserver, kube-controller-manager,
// kube-scheduler, etcd and kwok, built by hack/build-k8s.sh, started by hack/kwok-cluster.sh)
// and the operator binary as a subprocess. test/e2e and test/chaos share it.
//
// Every process it starts binds to 127.0.0.1 and is stopped by its PID, never by name.
package kwok

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// Binaries are the Kubernetes test binaries a kwok cluster needs (hack/build-k8s.sh).
var Binaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kwokctl"}

// scriptTimeout bounds every call of hack/kwok-cluster.sh and kubectl.
const scriptTimeout = 3 * time.Minute

// Cluster is a kwok cluster started by hack/kwok-cluster.sh.
type Cluster struct {
	t          testing.TB
	Root, Name string
	// BinDir holds the Kubernetes binaries; Kubectl is the kubectl in it.
	BinDir, Kubectl string
	// Kubeconfig is set by Up.
	Kubeconfig string

	stopSupervision func()
}

// NewCluster describes a cluster named name (not started yet). It skips the test when a
// Kubernetes binary is missing.
func NewCluster(t testing.TB, name string) *Cluster {
	t.Helper()
	root, err := filepath.Abs(apiserver.RepoRoot())
	require.NoError(t, err)
	bindir := filepath.Join(root, "bin", "k8s", apiserver.K8sVersion)
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bindir, b)); err != nil {
			t.Skipf("%s is missing: build the Kubernetes test binaries first with `bash hack/build-k8s.sh` (make k8s-binaries)", filepath.Join(bindir, b))
		}
	}
	return &Cluster{t: t, Root: root, Name: name, BinDir: bindir, Kubectl: filepath.Join(bindir, "kubectl")}
}

// Script runs hack/kwok-cluster.sh with args for this cluster.
func (c *Cluster) Script(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(c.Root, "hack", "kwok-cluster.sh")}, args...)...)
	cmd.Dir = c.Root
	cmd.Env = append(os.Environ(), "KWOK_CLUSTER="+c.Name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hack/kwok-cluster.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// MustScript is Script that fails the test on an error.
func (c *Cluster) MustScript(args ...string) string {
	c.t.Helper()
	out, err := c.Script(args...)
	require.NoError(c.t, err)
	return out
}

// KubectlRun runs kubectl against the cluster.
func (c *Cluster) KubectlRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Dir = c.Root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// MustKubectl is KubectlRun that fails the test on an error.
func (c *Cluster) MustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.KubectlRun(args...)
	require.NoError(c.t, err)
	return out
}

// Up starts the cluster and registers its deletion with t.Cleanup (registered first, it runs
// after the cleanups registered later, such as the operator's). A cluster of the same name left
// by an interrupted run is deleted first.
func (c *Cluster) Up() {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.Root, "bin", "kwok", "clusters", c.Name)); err == nil {
		c.t.Logf("deleting cluster %s left by an earlier run", c.Name)
		_, _ = c.Script("down")
	}
	c.t.Cleanup(func() {
		phase := time.Now()
		if c.stopSupervision != nil {
			c.stopSupervision()
		}
		if c.t.Failed() {
			c.keepLogs()
		}
		if out, err := c.Script("down"); err != nil {
			c.t.Errorf("deleting cluster %s: %v\n%s", c.Name, err, out)
		}
		c.t.Logf("cluster %s deleted in %s", c.Name, time.Since(phase).Round(time.Millisecond))
	})
	// kwokctl picks each component's port as the first free one below 32768 that no other
	// cluster of bin/kwok records: two clusters created at once (test/e2e and test/chaos run in
	// parallel under go test ./...) could pick the same ones. Creation is serialized across
	// processes with a lock file.
	unlock := c.lock()
	defer unlock()
	c.MustScript("up")
	c.Kubeconfig = c.MustScript("kubeconfig")
	c.stopSupervision = c.superviseScheduler()
}

// keepLogs copies the control plane's logs to bin/kwok/failed/<cluster>/ before the cluster and
// its directory are deleted, and puts the end of each in the test's output (CI keeps only that).
func (c *Cluster) keepLogs() {
	dst := filepath.Join(c.Root, "bin", "kwok", "failed", c.Name)
	_ = os.RemoveAll(dst)
	for _, f := range c.CopyLogs(dst) {
		c.t.Logf("the end of %s (all of it in %s):\n%s", filepath.Base(f), dst, logTail(f, 15))
	}
}

// CopyLogs copies the control plane's logs (kube-apiserver, kube-controller-manager,
// kube-scheduler, etcd, kwok) into dst and returns the copies' paths.
func (c *Cluster) CopyLogs(dst string) []string {
	files, _ := filepath.Glob(filepath.Join(c.dir(), "logs", "*.log"))
	if len(files) == 0 || os.MkdirAll(dst, 0o755) != nil {
		return nil
	}
	var copied []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		to := filepath.Join(dst, filepath.Base(f))
		if os.WriteFile(to, data, 0o644) == nil {
			copied = append(copied, to)
		}
	}
	return copied
}

// lock takes an exclusive flock on bin/kwok/.create.lock (bounded: 5 minutes).
func (c *Cluster) lock() (unlock func()) {
	c.t.Helper()
	dir := filepath.Join(c.Root, "bin", "kwok")
	require.NoError(c.t, os.MkdirAll(dir, 0o755))
	f, err := os.OpenFile(filepath.Join(dir, ".create.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(c.t, err)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			require.NoError(c.t, err, "locking %s", f.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}
}

// InstallCRDs applies the CRDs in paths (files or directories), waits until each is
// Established and restarts kube-controller-manager so its garbage collector knows the new kinds
// at once (it rediscovers them only every 30 s otherwise).
func (c *Cluster) InstallCRDs(names []string, paths ...string) {
	c.t.Helper()
	args := []string{"apply", "--server-side", "--force-conflicts"}
	for _, p := range paths {
		args = append(args, "-f", p)
	}
	c.MustKubectl(args...)
	// Poll rather than `kubectl wait`, which fails outright when it reads the CRD before the API
	// server has written any status condition.
	for _, name := range names {
		testenv.Eventually(c.t, "CRD "+name+" Established", func() error {
			out, err := exec.Command(c.Kubectl, "--kubeconfig", c.Kubeconfig, "get", "crd", name,
				"-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "True" {
				return fmt.Errorf("not established yet: %w (%s)", err, out)
			}
			return nil
		})
	}
	require.NoError(c.t, c.RestartKCM())
}

// RestartKCM restarts kube-controller-manager with the command line it runs with and waits until
// it is healthy (hack/kwok-cluster.sh restart-kcm starts it again, up to 5 times, when it exits
// before that, e.g. because its port was taken while it was down).
func (c *Cluster) RestartKCM() error {
	// Creation takes the same lock: no cluster created meanwhile picks its port.
	unlock := c.lock()
	defer unlock()
	_, err := c.Script("restart-kcm")
	return err
}

// Client connects to the cluster with the operator's scheme (100 QPS).
func (c *Cluster) Client() (*rest.Config, client.Client) {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(c.t, err)
	// the tests poll whole namespaces; client-go's default (5 QPS) would throttle them
	cfg.QPS, cfg.Burst = 100, 200
	k8s, err := client.New(cfg, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(c.t, err)
	return cfg, k8s
}

func (c *Cluster) dir() string { return filepath.Join(c.Root, "bin", "kwok", "clusters", c.Name) }

// ComponentPID is the PID of a control-plane component (kube-apiserver, etcd, ...) from the PID
// file kwokctl (or a restart) wrote.
func (c *Cluster) ComponentPID(component string) (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir(), "pids", component+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// KillComponent SIGKILLs a control-plane component (by the PID in its PID file, after checking
// that the PID still runs that binary) and returns a function that starts it again with the
// same command line and working directory (detached, log appended, PID file rewritten, as
// kwokctl does, so `hack/kwok-cluster.sh down` stops the new process).
func (c *Cluster) KillComponent(component string) (restart func() (exited <-chan error, err error), err error) {
	pid, args, cwd, err := c.componentCommand(component)
	if err != nil {
		return nil, err
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	if err := proc.Signal(syscall.SIGKILL); err != nil {
		return nil, fmt.Errorf("killing %s (pid %d): %w", component, pid, err)
	}
	// kwokctl started it, not us: poll /proc until the process is gone (bounded).
	for i := 0; i < 100 && running(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	return func() (<-chan error, error) { return c.startComponent(component, args, cwd) }, nil
}

// componentCommand is the PID, command line and working directory of a running component.
func (c *Cluster) componentCommand(component string) (pid int, args []string, cwd string, err error) {
	pid, err = c.ComponentPID(component)
	if err != nil {
		return 0, nil, "", err
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, nil, "", fmt.Errorf("%s (pid %d) is not running: %w", component, pid, err)
	}
	args = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if filepath.Base(args[0]) != component {
		return 0, nil, "", fmt.Errorf("pid %d runs %s, not %s", pid, args[0], component)
	}
	cwd, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		cwd = c.dir()
	}
	return pid, args, cwd, nil
}

// startComponent starts a component with args in cwd: detached, log appended, PID file
// rewritten. The channel receives its exit (it is reaped when it exits).
func (c *Cluster) startComponent(component string, args []string, cwd string) (<-chan error, error) {
	logFile, err := os.OpenFile(c.componentLog(component), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = cwd
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, os.WriteFile(filepath.Join(c.dir(), "pids", component+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// running reports whether pid is a live process (not gone, not a zombie).
func running(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !isZombie(string(st))
}

// superviseScheduler starts kube-scheduler again when it exits, as the kubelet restarts a
// static pod. It exits by design when its cache turns out inconsistent, which an API server
// restart in the middle of a binding can cause ("Pod updated on a different node than
// previously added to"; a CI run of the fault suite lost every later pod to it). Nothing else
// restarts it: kwokctl starts the components and leaves. The returned function stops the
// supervision and waits for it.
func (c *Cluster) superviseScheduler() (stop func()) {
	const component = "kube-scheduler"
	pid, args, cwd, err := c.componentCommand(component)
	if err != nil {
		c.t.Logf("not supervising %s: %v", component, err)
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		var exited <-chan error // set once we started it: we are its parent and reap it
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for restarts := 0; restarts < 10; {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			how := "exited" // kwokctl started it: no exit status to read
			if exited != nil {
				select {
				case werr := <-exited:
					how = fmt.Sprintf("exited (%v)", werr)
				default:
					continue
				}
			} else if running(pid) {
				continue
			}
			restarts++
			c.t.Logf("%s (pid %d) %s, starting it again (%d); the end of its log:\n%s",
				component, pid, how, restarts, logTail(c.componentLog(component), 5))
			started, startErr := c.startComponent(component, args, cwd)
			if startErr != nil {
				c.t.Errorf("starting %s again: %v", component, startErr)
				return
			}
			exited = started
			if pid, startErr = c.ComponentPID(component); startErr != nil {
				c.t.Errorf("%s: %v", component, startErr)
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// componentLog is the file a component of the cluster logs to.
func (c *Cluster) componentLog(component string) string {
	return filepath.Join(c.dir(), "logs", component+".log")
}

// logTail is the last n lines of a file, for an error message ("" when unreadable).
func logTail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// isZombie reports whether a /proc/<pid>/stat line is a zombie's (state Z): dead, not reaped
// by its parent yet.
func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && len(stat) > i+2 && stat[i+2] == 'Z'
}

// RestartAPIServer SIGKILLs kube-apiserver, starts it again and waits (bounded by timeout) until
// it answers /readyz. It returns how long the API was unavailable. A kube-apiserver that exits
// before it is ready is started again (at most five starts, a second apart): where the machine's
// ephemeral port range reaches below 32768, a listener another test opens on 127.0.0.1:0 in the
// moment the port is free takes it, and kube-apiserver exits with "address already in use".
// The error of a failed restart carries the end of its log.
func (c *Cluster) RestartAPIServer(timeout time.Duration) (time.Duration, error) {
	// While it is down its port is free: a cluster another test package creates meanwhile could
	// take it (a CI run failed so: "bind: address already in use", an HTTP server answering on
	// the API server's port). Creation takes the same lock, so none is created until it is back.
	unlock := c.lock()
	defer unlock()
	start := time.Now()
	restart, err := c.KillComponent("kube-apiserver")
	if err != nil {
		return 0, err
	}
	failed := func(format string, args ...any) (time.Duration, error) {
		return time.Since(start), fmt.Errorf("%s; the end of %s:\n%s", fmt.Sprintf(format, args...),
			c.componentLog("kube-apiserver"), logTail(c.componentLog("kube-apiserver"), 30))
	}
	const maxStarts = 5
	starts := 1
	exited, err := restart()
	if err != nil {
		return failed("starting kube-apiserver again: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return time.Since(start), err
	}
	cfg.Timeout = 2 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return time.Since(start), err
	}
	rc := dc.RESTClient()
	deadline := time.Now().Add(timeout)
	for {
		body, err := rc.Get().AbsPath("/readyz").DoRaw(context.Background())
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return time.Since(start), nil
		}
		select {
		case werr := <-exited:
			if starts == maxStarts {
				return failed("kube-apiserver exited %d times after the restart (last: %v)", starts, werr)
			}
			c.t.Logf("kube-apiserver exited before it was ready (%v), starting it again; the end of its log:\n%s",
				werr, logTail(c.componentLog("kube-apiserver"), 5))
			time.Sleep(time.Second)
			starts++
			if exited, err = restart(); err != nil {
				return failed("starting kube-apiserver again: %v", err)
			}
		default:
		}
		if time.Now().After(deadline) {
			return failed("kube-apiserver not ready %s after the restart (%d starts): %v", timeout, starts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
