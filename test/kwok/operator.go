package kwok

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BuildManager builds bin/manager as make build (and the image) does and returns its path; a
// no-op when it is up to date.
func BuildManager(t testing.TB, root string) string {
	t.Helper()
	manager := filepath.Join(root, "bin", "manager")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", manager, ".")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building bin/manager:\n%s", out)
	return manager
}

// FreePort is a TCP port on 127.0.0.1 nobody listens on at the moment.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// OperatorOptions say how to run bin/manager.
type OperatorOptions struct {
	Manager, Kubeconfig string
	// Log is the file stdout and stderr go to (truncated).
	Log string
	// Args are added after the kubeconfig, metrics and probe flags.
	Args []string
}

// Operator is bin/manager running as a subprocess, metrics over plain HTTP and probes on
// 127.0.0.1.
type Operator struct {
	Cmd                    *exec.Cmd
	PID                    int
	Log                    string
	MetricsPort, ProbePort int
	Started                time.Time

	done    chan struct{} // closed when the process has exited
	mu      sync.Mutex
	exitErr error
}

// StartOperator starts bin/manager. It does not wait for it to be ready (WaitReady).
func StartOperator(o OperatorOptions) (*Operator, error) {
	mp, err := FreePort()
	if err != nil {
		return nil, err
	}
	pp, err := FreePort()
	for err == nil && pp == mp {
		pp, err = FreePort()
	}
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(o.Log)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig", o.Kubeconfig,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", mp), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", pp),
	}, o.Args...)
	cmd := exec.Command(o.Manager, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// killed with the test process if that dies without its cleanups (a -timeout panic)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	op := &Operator{Cmd: cmd, PID: cmd.Process.Pid, Log: o.Log, MetricsPort: mp, ProbePort: pp, Started: time.Now(), done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		op.mu.Lock()
		op.exitErr = err
		op.mu.Unlock()
		close(op.done)
	}()
	return op, nil
}

// Done is closed when the process has exited.
func (o *Operator) Done() <-chan struct{} { return o.done }

// Exited reports whether the process has exited, and how.
func (o *Operator) Exited() (bool, error) {
	select {
	case <-o.done:
		o.mu.Lock()
		defer o.mu.Unlock()
		return true, o.exitErr
	default:
		return false, nil
	}
}

// WaitReady waits until the metrics endpoint answers (the manager has started), at most timeout;
// it fails at once when the process exits.
func (o *Operator) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if exited, err := o.Exited(); exited {
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("the operator (pid %d) exited: %w\n%s", o.PID, err, o.LogTail(40))
		}
		_, err := o.Requests()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator (pid %d) is not serving metrics after %s: %w\n%s", o.PID, timeout, err, o.LogTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop terminates the operator by its PID: SIGTERM, then SIGKILL after grace. It returns the
// exit error (nil for a clean exit); stopping an exited process returns how it exited.
func (o *Operator) Stop(grace time.Duration) error {
	if exited, err := o.Exited(); exited {
		return err
	}
	_ = o.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.done:
	case <-time.After(grace):
		_ = o.Cmd.Process.Kill()
		<-o.done
	}
	_, err := o.Exited()
	return err
}

// Kill SIGKILLs the operator by its PID and waits until it is gone. It returns false when the
// process had already exited.
func (o *Operator) Kill() bool {
	if exited, _ := o.Exited(); exited {
		return false
	}
	_ = o.Cmd.Process.Kill()
	select {
	case <-o.done:
	case <-time.After(10 * time.Second):
	}
	return true
}

// LogTail is the last n lines of the operator's log.
func (o *Operator) LogTail(n int) string {
	data, err := os.ReadFile(o.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Sample is one line of the Prometheus text format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics reads the operator's metrics endpoint.
func (o *Operator) Metrics() ([]Sample, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", o.MetricsPort))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var out []Sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseSample parses `name{k="v",...} value` or `name value` (label values without escaped
// quotes or commas, which is what the operator exports).
func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	var rest string
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return s, fmt.Errorf("metrics line %q", line)
		}
		s.Name = line[:i]
		for _, kv := range strings.Split(line[i+1:j], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				s.Labels[k] = strings.Trim(v, `"`)
			}
		}
		rest = line[j+1:]
	} else {
		f := strings.Fields(line)
		if len(f) < 2 {
			return s, fmt.Errorf("metrics line %q", line)
		}
		s.Name, rest = f[0], strings.Join(f[1:], " ")
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, fmt.Errorf("metrics line %q has no value", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("metrics line %q: %w", line, err)
	}
	s.Value = v
	return s, nil
}

// Sum adds the samples named name whose labels include every pair of match.
func Sum(samples []Sample, name string, match map[string]string) float64 {
	total := 0.0
outer:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for k, v := range match {
			if s.Labels[k] != v {
				continue outer
			}
		}
		total += s.Value
	}
	return total
}

// Requests is the operator's rest_client_requests_total, summed over all labels.
func (o *Operator) Requests() (int, error) {
	m, err := o.Metrics()
	if err != nil {
		return 0, err
	}
	return int(Sum(m, "rest_client_requests_total", nil)), nil
}

// IsLeader reports whether the operator holds the lease (leader_election_master_status = 1).
func (o *Operator) IsLeader(lease string) (bool, error) {
	m, err := o.Metrics()
	if err != nil {
		return false, err
	}
	for _, s := range m {
		if s.Name == "leader_election_master_status" && s.Labels["name"] == lease {
			return s.Value == 1, nil
		}
	}
	return false, nil
}

// ErrTimeout is returned by Poll when the condition did not hold in time.
var ErrTimeout = errors.New("timed out")

// Eventually polls cond every tick until it returns true or the timeout passes; on timeout it
// fails the test with the last state cond described.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if last, err := Poll(timeout, 200*time.Millisecond, cond); err != nil {
		t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
	}
}

// Poll calls cond every tick until it returns true (nil error) or timeout passes (ErrTimeout
// and the last state cond described).
func Poll(timeout, tick time.Duration, cond func() (bool, string)) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return state, nil
		}
		if time.Now().After(deadline) {
			return state, ErrTimeout
		}
		time.Sleep(tick)
	}
}
