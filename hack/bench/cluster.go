package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// cluster drives hack/kwok-cluster.sh for the benchmark's own cluster.
type cluster struct {
	root, name, kubectl string
	kubeconfig          string
}

func (c *cluster) script(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(c.root, "hack", "kwok-cluster.sh")}, args...)...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "KWOK_CLUSTER="+c.name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hack/kwok-cluster.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *cluster) kubectlRun(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (c *cluster) up(ctx context.Context) error {
	if _, err := c.script(ctx, 3*time.Minute, "up"); err != nil {
		return err
	}
	kc, err := c.script(ctx, 10*time.Second, "kubeconfig")
	if err != nil {
		return err
	}
	c.kubeconfig = kc
	return nil
}

// down deletes the cluster; it runs on a fresh context so it also works after Ctrl-C.
func (c *cluster) down() error {
	_, err := c.script(context.Background(), 3*time.Minute, "down")
	return err
}

// installCRD applies the CRD, waits until it is served and restarts kube-controller-manager so
// its garbage collector knows the new kind at once.
func (c *cluster) installCRD(ctx context.Context, kcmArgs []string) error {
	if _, err := c.kubectlRun(ctx, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(c.root, "config", "crd", "bases")); err != nil {
		return err
	}
	if err := c.awaitEstablished(ctx, "dittoservers.dittofs.dittofs.com", time.Minute); err != nil {
		return err
	}
	if len(kcmArgs) > 0 {
		return c.restartKCM(ctx, kcmArgs)
	}
	_, err := c.script(ctx, 2*time.Minute, "restart-kcm")
	return err
}

// awaitEstablished polls the CRD's Established condition. kubectl wait is not used: on a CRD
// created a moment before it fails at once with "<nil> is of the type <nil>, expected
// []interface{}" while .status.conditions is still unset (a bench run stopped on it).
func (c *cluster) awaitEstablished(ctx context.Context, crd string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.kubectlRun(ctx, "get", "crd", crd, "-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
		if err == nil && out == "True" {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("CRD %s not Established after %s: %w", crd, timeout, err)
			}
			return fmt.Errorf("CRD %s not Established after %s (condition %q)", crd, timeout, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// restartKCM restarts kube-controller-manager with extra flags (hack/kwok-cluster.sh
// restart-kcm does the same without them): same command line, own session, log appended, PID
// file rewritten so hack/kwok-cluster.sh down stops it.
func (c *cluster) restartKCM(ctx context.Context, extra []string) error {
	dir := filepath.Join(c.root, "bin", "kwok", "clusters", c.name)
	pidFile := filepath.Join(dir, "pids", "kube-controller-manager.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return err
	}
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if !strings.HasSuffix(args[0], "kube-controller-manager") {
		return fmt.Errorf("pid %d is not kube-controller-manager", pid)
	}
	drop := map[string]bool{}
	for _, e := range extra {
		drop[strings.SplitN(e, "=", 2)[0]] = true
	}
	var kept []string
	for _, a := range args[1:] {
		if !drop[strings.SplitN(a, "=", 2)[0]] {
			kept = append(kept, a)
		}
	}
	args = append(append([]string{args[0]}, kept...), extra...)
	proc, _ := os.FindProcess(pid)
	_ = proc.Signal(syscall.SIGTERM)
	for i := 0; i < 100 && proc.Signal(syscall.Signal(0)) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = proc.Kill()
	logFile, err := os.OpenFile(filepath.Join(dir, "logs", "kube-controller-manager.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	port, err := c.componentPort("kube-controller-manager")
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health check of a throwaway cluster
	for i := 0; i < 150; i++ {
		if resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port)); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kube-controller-manager not healthy 30 s after the restart with %v", extra)
}

// scaleNodes sets the number of kwok nodes (each fake node takes 110 pods).
func (c *cluster) scaleNodes(ctx context.Context, n int, kwokctl string) error {
	ctx2, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx2, kwokctl, "--name", c.name, "scale", "node", "--replicas", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "KWOK_WORKDIR="+filepath.Join(c.root, "bin", "kwok"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kwokctl scale node --replicas %d: %w\n%s", n, err, out)
	}
	_, err := c.kubectlRun(ctx, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
	return err
}

// componentCPU is the CPU seconds each control-plane process of the cluster has used so far.
func (c *cluster) componentCPU() map[string]float64 {
	out := map[string]float64{}
	files, _ := filepath.Glob(filepath.Join(c.root, "bin", "kwok", "clusters", c.name, "pids", "*.pid"))
	for _, f := range files {
		pid, err := readPIDFile(f)
		if err != nil {
			continue
		}
		if p, err := readProc(pid); err == nil {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = p.CPUSeconds
		}
	}
	return out
}

// componentPort is the --secure-port of a control-plane component, read from its command line.
func (c *cluster) componentPort(component string) (int, error) {
	pidFile := filepath.Join(c.root, "bin", "kwok", "clusters", c.name, "pids", component+".pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, err
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(b)), "cmdline"))
	if err != nil {
		return 0, err
	}
	for _, a := range strings.Split(string(cmdline), "\x00") {
		if v, ok := strings.CutPrefix(a, "--secure-port="); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("%s has no --secure-port", component)
}

// clusterUp starts the run's kwok cluster with the CRD installed, kube-controller-manager
// restarted and one kwok node per 100 servers, connects the benchmark's client and adds a
// Service range. Teardown deletes the cluster.
func (br *benchRun) clusterUp(ctx context.Context) error {
	res := br.res
	c := &cluster{root: br.root, name: br.cfg.Cluster, kubectl: br.kubectl}
	_ = c.down() // a leftover of an interrupted run
	t := time.Now()
	if err := c.up(ctx); err != nil {
		return fmt.Errorf("cluster up: %w", err)
	}
	br.c = c
	br.onTeardown(func() {
		br.cancel() // the benchmark's watches stop before the API server goes
		t := time.Now()
		if err := c.down(); err != nil {
			logf("cluster down: %v", err)
		} else {
			logf("cluster %s deleted in %s", c.name, time.Since(t).Round(time.Millisecond))
		}
	})
	if err := c.installCRD(ctx, res.KCMArgs); err != nil {
		return fmt.Errorf("CRD: %w", err)
	}
	// a kwok node takes 110 pods: one node per 100 servers
	res.Nodes = (res.N + 99) / 100
	if res.Nodes > 1 {
		if err := c.scaleNodes(ctx, res.Nodes, filepath.Join(br.root, "bin", "k8s", br.cfg.K8sVersion, "kwokctl")); err != nil {
			return fmt.Errorf("nodes: %w", err)
		}
	}
	logf("cluster %s up (%d kwok nodes), CRD installed, kube-controller-manager restarted in %s", c.name, res.Nodes, time.Since(t).Round(time.Millisecond))

	restCfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	restCfg.QPS, restCfg.Burst = 1000, 2000
	sch := scheme()
	k8s, err := client.New(restCfg, client.Options{Scheme: sch})
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	br.restCfg, br.sch, br.k8s = restCfg, sch, k8s
	return addServiceCIDR(ctx, k8s)
}

// addServiceCIDR widens the Service range: the API server's default one (10.0.0.0/24) holds 2
// ClusterIPs per server for ~126 servers only, so it adds a /16 (ServiceCIDR, GA since
// Kubernetes 1.33) and waits until it is Ready.
func addServiceCIDR(ctx context.Context, k8s client.Client) error {
	if err := k8s.Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "bench-extra"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.1.0.0/16"}}}); err != nil {
		return fmt.Errorf("ServiceCIDR: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		sc := &networkingv1.ServiceCIDR{}
		if err := k8s.Get(ctx, types.NamespacedName{Name: "bench-extra"}, sc); err == nil &&
			apimeta.IsStatusConditionTrue(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("ServiceCIDR bench-extra not Ready after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// operator is bin/manager running as a subprocess in its own process group (a Ctrl-C in the
// terminal reaches the benchmark, which stops the operator by its PID).
type operator struct {
	cmd         *exec.Cmd
	pid         int
	metricsPort int
	probePort   int
	pprofPort   int // 0: not profiled
	log         string
	pidFile     string
	started     time.Time
	done        chan error
	exited      bool
	exitErr     error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOperator(ctx context.Context, manager, kubeconfig, logPath, pidFile string, extra, env []string, profile bool) (*operator, error) {
	mp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	for pp == mp {
		if pp, err = freePort(); err != nil {
			return nil, err
		}
	}
	var pprofPort int
	for profile && (pprofPort == 0 || pprofPort == mp || pprofPort == pp) {
		if pprofPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", mp), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", pp),
	}
	if profile {
		args = append(args, "--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", pprofPort))
	}
	args = append(args, extra...)
	cmd := exec.Command(manager, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	op := &operator{cmd: cmd, pid: cmd.Process.Pid, metricsPort: mp, probePort: pp, pprofPort: pprofPort, log: logPath, pidFile: pidFile,
		started: time.Now(), done: make(chan error, 1)}
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(op.pid)), 0o644)
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		op.done <- err
	}()
	// ready: /readyz answers and /metrics is served
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-op.done:
			op.exited = true
			return nil, fmt.Errorf("the operator exited at start: %w\n%s", err, tail(logPath, 30))
		case <-ctx.Done():
			op.stop()
			return nil, ctx.Err()
		default:
		}
		if ok(fmt.Sprintf("http://127.0.0.1:%d/readyz", pp)) && ok(fmt.Sprintf("http://127.0.0.1:%d/metrics", mp)) {
			return op, nil
		}
		if time.Now().After(deadline) {
			op.stop()
			return nil, fmt.Errorf("the operator is not ready after 60 s\n%s", tail(logPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ok(url string) bool {
	resp, err := (&http.Client{Timeout: time.Second}).Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop sends SIGTERM to the operator's PID, then SIGKILL after 20 s.
func (o *operator) stop() {
	if o == nil || o.exited {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case o.exitErr = <-o.done:
	case <-time.After(20 * time.Second):
		_ = o.cmd.Process.Kill()
		o.exitErr = <-o.done
	}
	o.exited = true
	_ = os.Remove(o.pidFile)
}

func (o *operator) alive() bool {
	if o.exited {
		return false
	}
	select {
	case err := <-o.done:
		o.exited = true
		o.done <- err
		return false
	default:
		return true
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

// killStale stops an operator left by an interrupted run (PID file), only if that PID is still
// bin/manager.
func killStale(pidFile, manager string) {
	pid, err := readPIDFile(pidFile)
	if err != nil {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err == nil && strings.HasPrefix(string(cmdline), manager+"\x00") {
		p, _ := os.FindProcess(pid)
		_ = p.Signal(syscall.SIGTERM)
		for i := 0; i < 100; i++ {
			if err := p.Signal(syscall.Signal(0)); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = p.Kill()
		fmt.Printf("stopped a stale operator (pid %d)\n", pid)
	}
	_ = os.Remove(pidFile)
}

// readPIDFile reads the process ID a PID file holds.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
