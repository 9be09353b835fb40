//go:build linux

package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sandboxPodIP is the pod's address inside each network namespace. It sits on lo next to
// 127.0.0.1, so a server that bound only to loopback fails the probes, as it would in a pod.
const sandboxPodIP = "10.244.0.10"

// imagePath is the PATH of the dfs image (alpine); the pod env has it, the container spec does not.
const imagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var unshareBin, nsenterBin, ipBin, setprivBin string

// netnsAvailable reports whether processes can run in private network namespaces.
func netnsAvailable() (bool, string) {
	setprivBin, _ = exec.LookPath("setpriv")
	if os.Getenv("CONFORMANCE_NO_NETNS") != "" {
		return false, "CONFORMANCE_NO_NETNS is set"
	}
	if os.Geteuid() != 0 {
		return false, "not running as root"
	}
	if sysSetns < 0 {
		return false, "setns(2) number unknown on " + runtime.GOARCH
	}
	for _, b := range []struct {
		name string
		dst  *string
	}{{"unshare", &unshareBin}, {"nsenter", &nsenterBin}, {"ip", &ipBin}} {
		p, err := exec.LookPath(b.name)
		if err != nil {
			return false, b.name + " not found"
		}
		*b.dst = p
	}
	out, err := exec.Command(unshareBin, "--net", "--", ipBin, "link", "set", "lo", "up").CombinedOutput()
	if err != nil {
		return false, fmt.Sprintf("unshare --net fails: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// parallel marks t parallel when cases cannot collide (each in its own network namespace).
func parallel(t *testing.T) {
	if useNetns {
		t.Parallel()
	}
}

// sandbox is one pod's network: a private network namespace (held by a sleeping process) with
// lo up and the pod IP on it, plus a goroutine locked to an OS thread inside that namespace,
// through which the test opens its TCP connections. In fallback mode it is the host network.
type sandbox struct {
	netns  bool
	nsPath string
	podIP  string
	work   chan func()
	quit   chan struct{}
	done   chan struct{}
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	sb := &sandbox{podIP: "127.0.0.1"}
	if !useNetns {
		return sb
	}
	sb.netns, sb.podIP = true, sandboxPodIP
	script := fmt.Sprintf("%[1]s link set lo up && %[1]s addr add %[2]s/32 dev lo && echo ready && exec sleep 900", ipBin, sandboxPodIP)
	holder := exec.Command(unshareBin, "--net", "--", "/bin/sh", "-c", script)
	holder.Env = []string{"PATH=" + imagePath}
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr := &syncBuffer{}
	holder.Stderr = stderr
	stdout, err := holder.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, holder.Start())
	exited := make(chan struct{})
	go func() { _ = holder.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		<-exited
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		require.Equal(t, "ready", strings.TrimSpace(s), "network namespace setup failed: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("network namespace setup timed out: %s", stderr.String())
	}
	sb.nsPath = fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	require.NoError(t, sb.startWorker(), "entering the network namespace")
	t.Cleanup(func() {
		close(sb.quit)
		<-sb.done
	})
	return sb
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func setns(fd uintptr) error {
	_, _, errno := syscall.RawSyscall(uintptr(sysSetns), fd, syscall.CLONE_NEWNET, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// startWorker starts the goroutine that runs functions inside the namespace. Its thread goes
// back to the original namespace before it is unlocked, so no thread of the test process ever
// leaves the pool in a foreign namespace (nor exits: children started with Pdeathsig survive).
func (sb *sandbox) startWorker() error {
	sb.work, sb.quit, sb.done = make(chan func()), make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(sb.done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := os.Open(sb.nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := setns(target.Fd()); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", sb.nsPath, err)
			return
		}
		errc <- nil
		for {
			select {
			case fn := <-sb.work:
				fn()
			case <-sb.quit:
				if setns(orig.Fd()) == nil {
					runtime.UnlockOSThread()
				} // else return locked: the runtime ends this thread
				return
			}
		}
	}()
	return <-errc
}

// do runs fn with the calling thread inside the sandbox's network namespace.
func (sb *sandbox) do(fn func()) {
	if !sb.netns {
		fn()
		return
	}
	finished := make(chan struct{})
	select {
	case sb.work <- func() { defer close(finished); fn() }:
		<-finished
	case <-sb.done:
		panic("sandbox worker stopped")
	}
}

// dial opens a TCP connection from inside the namespace.
func (sb *sandbox) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	sb.do(func() {
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err = d.DialContext(ctx, network, addr)
	})
	return conn, err
}

// httpClient talks HTTP inside the namespace (no proxies, no connection reuse across restarts).
func (sb *sandbox) httpClient(timeout time.Duration) *http.Client {
	return sb.tlsClient(timeout, nil)
}

// probeClient is the kubelet's view: HTTPS probes do not verify the certificate.
func (sb *sandbox) probeClient(timeout time.Duration) *http.Client {
	return sb.tlsClient(timeout, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // as the kubelet's probes
}

func (sb *sandbox) tlsClient(timeout time.Duration, cfg *tls.Config) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: sb.dial, DisableKeepAlives: true, Proxy: nil, TLSClientConfig: cfg},
	}
}

// freePort returns a TCP port nothing listens on at 127.0.0.1 inside the namespace.
func (sb *sandbox) freePort(t testing.TB) int {
	t.Helper()
	var port int
	var err error
	sb.do(func() {
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			port = l.Addr().(*net.TCPAddr).Port
			err = l.Close()
		}
	})
	require.NoError(t, err)
	return port
}

// runAs is the identity a process runs with (the pod's security context when the test can
// switch users, else the test's own).
type runAs struct {
	switchUser bool
	uid, gid   int64
	groups     []int64
}

func (u runAs) String() string {
	if !u.switchUser {
		return fmt.Sprintf("uid %d (the test's own user)", os.Geteuid())
	}
	return fmt.Sprintf("uid %d gid %d groups %v", u.uid, u.gid, u.groups)
}

// command builds argv to run in the sandbox as u with exactly env. nsenter and setpriv exec
// argv[0], so the Cmd's PID is the program's own PID.
func (sb *sandbox) command(u runAs, env []string, argv ...string) *exec.Cmd {
	full := append([]string(nil), argv...)
	if u.switchUser {
		groups := "--clear-groups"
		if len(u.groups) > 0 {
			var g []string
			for _, id := range u.groups {
				g = append(g, strconv.FormatInt(id, 10))
			}
			groups = "--groups=" + strings.Join(g, ",")
		}
		full = append([]string{setprivBin,
			"--reuid=" + strconv.FormatInt(u.uid, 10), "--regid=" + strconv.FormatInt(u.gid, 10), groups,
			"--pdeathsig=KILL", "--"}, full...)
	}
	if sb.netns {
		full = append([]string{nsenterBin, "--net=" + sb.nsPath, "--"}, full...)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// proc is a started process whose output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	started time.Time
	logPath string
	exited  chan struct{}
	state   *os.ProcessState
}

func startProc(t testing.TB, name string, cmd *exec.Cmd, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	cmd.Stdout, cmd.Stderr = f, f
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	p.started = time.Now()
	require.NoError(t, cmd.Start(), "starting %s", name)
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- last lines of %s (%s):\n%s", name, logPath, p.logTail(40))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// wait waits up to d for the process to exit; it returns the exit code (-1 for a signal) and
// false on timeout.
func (p *proc) wait(d time.Duration) (int, bool) {
	select {
	case <-p.exited:
		return p.state.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// kill ends the process by its PID if it still runs.
func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vmHWM is the peak resident set size of pid in kB.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
