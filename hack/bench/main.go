// Command bench measures the operator on a local kwok control plane (make bench; the method and
// the numbers are in docs/PERFORMANCE.md).
//
// For each N (BENCH_N, default 1,50,200) it creates a fresh kwok cluster (KWOK_CLUSTER, default
// dittofs-bench), installs the CRD, restarts kube-controller-manager, creates ceil(N/BENCH_PER_NS)
// namespaces with the sample Secrets, starts bin/manager as a subprocess (metrics on 127.0.0.1)
// and measures:
//
//   - converge: N DittoServers (the basic sample) created at once; time from each create to
//     Ready=True (observedGeneration current) from the benchmark's own watches; operator API
//     requests (rest_client_requests_total) and reconciles (controller_runtime_reconcile_total)
//     until no request for BENCH_QUIET (5s); CPU seconds and RSS from /proc;
//   - idle: BENCH_IDLE (5m) without changes: reconciles, writes and requests;
//   - spec change: spec.database.sqlite.path of one server changes its config.yaml: time until
//     the StatefulSet's pod template carries the new config hash and until Ready=True again;
//   - restart: the operator is stopped (SIGTERM) and started again: requests until quiet, writes,
//     and which objects changed resourceVersion.
//
// Then the operator is stopped by its PID and the cluster is deleted. With BENCH_TRACE=1 (the
// default) the operator talks to the API server through a recording TLS proxy on 127.0.0.1 that
// breaks its requests down by verb, resource and field manager. Results: a table on stdout and
// bin/bench/<timestamp>.json; operator logs in bin/bench/<timestamp>-n<N>-manager*.log.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

type benchConfig struct {
	Ns           []int         `json:"n"`
	PerNamespace int           `json:"serversPerNamespace"`
	Idle         time.Duration `json:"-"`
	IdleText     string        `json:"idle"`
	Quiet        time.Duration `json:"-"`
	QuietText    string        `json:"quiet"`
	ReadyTimeout time.Duration `json:"-"`
	OperatorArgs []string      `json:"operatorArgs"`
	KCMArgs      []string      `json:"kubeControllerManagerArgs,omitempty"`
	Manager      string        `json:"manager"`
	Trace        bool          `json:"trace"`
	Cluster      string        `json:"cluster"`
	K8sVersion   string        `json:"k8sVersion"`
}

func loadConfig() (benchConfig, error) {
	c := benchConfig{PerNamespace: 10, Idle: 5 * time.Minute, Quiet: 5 * time.Second, Trace: true,
		Cluster: envOr("KWOK_CLUSTER", "dittofs-bench"), K8sVersion: envOr("K8S_VERSION", "v1.35.4")}
	for _, f := range strings.Split(envOr("BENCH_N", "1,50,200"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return c, fmt.Errorf("BENCH_N: %q is not a positive number", f)
		}
		c.Ns = append(c.Ns, n)
	}
	var err error
	if v := os.Getenv("BENCH_PER_NS"); v != "" {
		if c.PerNamespace, err = strconv.Atoi(v); err != nil || c.PerNamespace < 1 {
			return c, fmt.Errorf("BENCH_PER_NS: %q", v)
		}
	}
	for name, d := range map[string]*time.Duration{"BENCH_IDLE": &c.Idle, "BENCH_QUIET": &c.Quiet, "BENCH_READY_TIMEOUT": &c.ReadyTimeout} {
		if v := os.Getenv(name); v != "" {
			if *d, err = time.ParseDuration(v); err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	c.IdleText, c.QuietText = c.Idle.String(), c.Quiet.String()
	// kwok runs no DittoFS, so its REST API is unreachable: without this flag every server would
	// be re-checked every 30 s (ControlPlaneReady=Unknown) and the idle phase would measure that.
	// The benchmark measures the Kubernetes side; BENCH_OPERATOR_ARGS replaces the default.
	c.OperatorArgs = []string{"--manage-control-plane=false"}
	if v, ok := os.LookupEnv("BENCH_OPERATOR_ARGS"); ok {
		c.OperatorArgs = strings.Fields(v)
	}
	// kube-controller-manager's own client limit (20 QPS) makes the StatefulSet, PVC and PV work of
	// 50 servers take minutes; by default it is raised so that the operator is what is measured.
	// BENCH_KCM_ARGS="" keeps the stock kube-controller-manager.
	c.KCMArgs = []string{"--kube-api-qps=1000", "--kube-api-burst=2000"}
	if v, set := os.LookupEnv("BENCH_KCM_ARGS"); set {
		c.KCMArgs = strings.Fields(v)
	}
	c.Manager = os.Getenv("BENCH_MANAGER")
	c.Trace = envOr("BENCH_TRACE", "1") != "0"
	return c, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Result types (the JSON file).

type report struct {
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Machine  machine      `json:"machine"`
	Config   benchConfig  `json:"config"`
	Commit   string       `json:"commit"`
	Runs     []*runResult `json:"runs"`
}

type machine struct {
	Nproc    int    `json:"nproc"`
	MemTotal string `json:"memTotal"`
	FreeG    string `json:"freeG"`
	CPUModel string `json:"cpuModel"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

type latencies struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func latencyOf(xs []float64) latencies {
	if len(xs) == 0 {
		return latencies{}
	}
	return latencies{P50: round3(percentile(xs, 50)), P99: round3(percentile(xs, 99)), Max: round3(percentile(xs, 100))}
}

type runResult struct {
	N          int    `json:"n"`
	Namespaces int    `json:"namespaces"`
	Nodes      int    `json:"kwokNodes"`
	Error      string `json:"error,omitempty"`
	LoadAvg    string `json:"loadAvgAtStart"`

	Startup struct {
		Requests   int     `json:"requests"`
		Seconds    float64 `json:"secondsToQuiet"`
		CPUSeconds float64 `json:"cpuSeconds"`
		RSSMiB     float64 `json:"rssMiB"`
	} `json:"startup"`

	Converge struct {
		AllReadySeconds float64 `json:"allReadySeconds"`
		ApplySeconds    float64 `json:"applySeconds"`
		Ready           int     `json:"ready"`
		// per CR, seconds from its create request
		ReadyLatency      latencies `json:"readyLatency"`
		StatefulSetLat    latencies `json:"statefulSetCreatedLatency"`
		DeployedLatency   latencies `json:"helmDeployedLatency"`
		PodReadyLatency   latencies `json:"statefulSetReadyLatency"`
		ReadyAfterPodsLat latencies `json:"readyAfterStatefulSetReady"`
		QuietSeconds      float64   `json:"quietAfterSeconds"`

		Metrics       metricsDelta       `json:"metrics"`
		RequestsPerCR float64            `json:"requestsPerCR"`
		WritesPerCR   float64            `json:"writesPerCR"`
		ReconcilesCR  map[string]float64 `json:"reconcilesPerCRByController"`
		Trace         *traceDelta        `json:"trace,omitempty"`
		TracePerCR    map[string]float64 `json:"tracePerCR,omitempty"`

		CPUSeconds    float64            `json:"cpuSeconds"`
		PeakRSSMiB    float64            `json:"peakRSSMiB"` // VmHWM
		RSSAfterMiB   float64            `json:"rssAfterMiB"`
		AnonAfterMiB  float64            `json:"rssAnonAfterMiB"`
		FileAfterMiB  float64            `json:"rssFileAfterMiB"`
		HeapInuseMiB  float64            `json:"heapInuseMiB"`
		ClusterCPU    map[string]float64 `json:"clusterCPUSeconds,omitempty"`
		BenchCPU      float64            `json:"benchCPUSeconds"`
		KCMRequests   map[string]float64 `json:"kubeControllerManagerRequests,omitempty"`
		SchedRequests map[string]float64 `json:"kubeSchedulerRequests,omitempty"`
	} `json:"converge"`

	Idle struct {
		Seconds        float64      `json:"seconds"`
		Metrics        metricsDelta `json:"metrics"`
		Trace          *traceDelta  `json:"trace,omitempty"`
		CPUSeconds     float64      `json:"cpuSeconds"`
		RSSSettledMiB  float64      `json:"rssSettledMiB"`
		AnonSettledMiB float64      `json:"rssAnonSettledMiB"`
		FileSettledMiB float64      `json:"rssFileSettledMiB"`
		PeakRSSMiB     float64      `json:"peakRSSMiB"`
		HeapInuseMiB   float64      `json:"heapInuseMiB"`
		ReadyAtEnd     int          `json:"readyAtEnd"`
		ResourceChange []string     `json:"objectsChanged"`
	} `json:"idle"`

	SpecChange struct {
		Server           string       `json:"server"`
		ConfigMapSeconds float64      `json:"configMapUpdatedSeconds"`
		HashSeconds      float64      `json:"newHashSeconds"`
		RolledSeconds    float64      `json:"statefulSetRolledSeconds"`
		ReadySeconds     float64      `json:"readySeconds"`
		QuietSeconds     float64      `json:"quietAfterSeconds"`
		Metrics          metricsDelta `json:"metrics"`
		Trace            *traceDelta  `json:"trace,omitempty"`
		CPUSeconds       float64      `json:"cpuSeconds"`
		Error            string       `json:"error,omitempty"`
	} `json:"specChange"`

	Restart struct {
		QuietAfterSeconds float64      `json:"quietAfterSeconds"`
		Quiet             bool         `json:"quiet"`
		Metrics           metricsDelta `json:"metrics"`
		Trace             *traceDelta  `json:"trace,omitempty"`
		ObjectsChanged    []string     `json:"objectsChanged"`
		ReadyAfter        int          `json:"readyAfter"`
		CPUSeconds        float64      `json:"cpuSeconds"`
		RSSMiB            float64      `json:"rssMiB"`
		PeakRSSMiB        float64      `json:"peakRSSMiB"`
		Error             string       `json:"error,omitempty"`
	} `json:"restart"`

	Logs []string `json:"logs"`
}

func main() {
	// the benchmark's informers would log watch errors when a cluster goes away
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "kwok-cluster.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from the repository (no hack/kwok-cluster.sh above the working directory)")
		}
		dir = parent
	}
}

func run(ctx context.Context) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	rep := &report{Started: time.Now(), Machine: machineInfo(), Config: cfg, Commit: gitCommit(root)}
	outDir := filepath.Join(root, "bin", "bench")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	manager := filepath.Join(root, "bin", "manager")
	if cfg.Manager != "" {
		if manager, err = filepath.Abs(cfg.Manager); err != nil {
			return err
		}
	}
	rep.Config.Manager = manager
	if _, err := os.Stat(manager); err != nil {
		return fmt.Errorf("%s missing: make build (hack/bench.sh does it)", manager)
	}
	kubectl := filepath.Join(root, "bin", "k8s", cfg.K8sVersion, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		return fmt.Errorf("%s missing: run hack/build-k8s.sh (make k8s-binaries)", kubectl)
	}
	killStale(filepath.Join(outDir, "manager.pid"), manager)

	stamp := time.Now().Format("20060102-150405")
	jsonPath := filepath.Join(outDir, stamp+".json")
	fmt.Printf("bench: N=%v, %d servers per namespace, idle %s, quiet %s, trace %v, operator %s %q, kcm args %q\n",
		cfg.Ns, cfg.PerNamespace, cfg.Idle, cfg.Quiet, cfg.Trace, manager, cfg.OperatorArgs, cfg.KCMArgs)
	fmt.Printf("machine: %d CPUs (%s), memory %s, load %s\n", rep.Machine.Nproc, rep.Machine.CPUModel, rep.Machine.MemTotal, loadAvg())

	b := &bench{cfg: cfg, root: root, outDir: outDir, manager: manager, kubectl: kubectl, stamp: stamp}
	rep.Config = cfg
	rep.Config.Manager = manager
	for _, n := range cfg.Ns {
		if ctx.Err() != nil {
			break
		}
		res := b.runOne(ctx, n)
		rep.Runs = append(rep.Runs, res)
		rep.Finished = time.Now()
		if err := writeJSON(jsonPath, rep); err != nil {
			return err
		}
		printRun(res)
	}
	rep.Finished = time.Now()
	if err := writeJSON(jsonPath, rep); err != nil {
		return err
	}
	printTable(rep)
	fmt.Printf("\nJSON: %s\n", jsonPath)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, r := range rep.Runs {
		if r.Error != "" {
			return fmt.Errorf("run with %d servers: %s", r.N, r.Error)
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

type bench struct {
	cfg                   benchConfig
	root, outDir, manager string
	kubectl, stamp        string
}

func logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// runOne measures one N on a fresh cluster with a fresh operator.
func (b *bench) runOne(parent context.Context, n int) (res *runResult) {
	res = &runResult{N: n, LoadAvg: loadAvg()}
	res.Namespaces = (n + b.cfg.PerNamespace - 1) / b.cfg.PerNamespace
	fmt.Printf("\n==== N=%d (%d namespaces)\n", n, res.Namespaces)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	fail := func(format string, args ...any) *runResult {
		res.Error = fmt.Sprintf(format, args...)
		logf("ERROR: %s", res.Error)
		return res
	}

	c := &cluster{root: b.root, name: b.cfg.Cluster, kubectl: b.kubectl}
	_ = c.down() // a leftover of an interrupted run
	t := time.Now()
	if err := c.up(ctx); err != nil {
		return fail("cluster up: %v", err)
	}
	defer func() {
		cancel() // the benchmark's watches stop before the API server goes
		t := time.Now()
		if err := c.down(); err != nil {
			logf("cluster down: %v", err)
		} else {
			logf("cluster %s deleted in %s", c.name, time.Since(t).Round(time.Millisecond))
		}
	}()
	if err := c.installCRD(ctx, b.cfg.KCMArgs); err != nil {
		return fail("CRD: %v", err)
	}
	// a kwok node takes 110 pods: one node per 100 servers
	res.Nodes = (n + 99) / 100
	if res.Nodes > 1 {
		if err := c.scaleNodes(ctx, res.Nodes, filepath.Join(b.root, "bin", "k8s", b.cfg.K8sVersion, "kwokctl")); err != nil {
			return fail("nodes: %v", err)
		}
	}
	logf("cluster %s up (%d kwok nodes), CRD installed, kube-controller-manager restarted in %s", c.name, res.Nodes, time.Since(t).Round(time.Millisecond))

	restCfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fail("kubeconfig: %v", err)
	}
	restCfg.QPS, restCfg.Burst = 1000, 2000
	sch := scheme()
	k8s, err := client.New(restCfg, client.Options{Scheme: sch})
	if err != nil {
		return fail("client: %v", err)
	}

	// The API server's default Service range (10.0.0.0/24) holds 2 ClusterIPs per server for
	// ~126 servers only: add a /16 (ServiceCIDR, GA since Kubernetes 1.33).
	if err := k8s.Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "bench-extra"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.1.0.0/16"}}}); err != nil {
		return fail("ServiceCIDR: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		sc := &networkingv1.ServiceCIDR{}
		if err := k8s.Get(ctx, types.NamespacedName{Name: "bench-extra"}, sc); err == nil &&
			apimeta.IsStatusConditionTrue(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady) {
			break
		}
		if time.Now().After(deadline) {
			return fail("ServiceCIDR bench-extra not Ready after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	servers, err := b.prepareNamespaces(ctx, k8s, n, res.Namespaces)
	if err != nil {
		return fail("namespaces: %v", err)
	}
	trk := newTracker()
	defer trk.close()
	runStart := time.Now()
	timeline := filepath.Join(b.outDir, fmt.Sprintf("%s-n%d-timeline.log", b.stamp, n))
	if err := trk.followTo(servers[0].String(), timeline, runStart); err != nil {
		return fail("timeline: %v", err)
	}
	res.Logs = append(res.Logs, timeline)
	if err := startWatches(ctx, restCfg, sch, trk); err != nil {
		return fail("watches: %v", err)
	}

	opKubeconfig := c.kubeconfig
	var tr *tracer
	if b.cfg.Trace {
		if tr, err = startTracer(restCfg); err != nil {
			return fail("tracer: %v", err)
		}
		defer tr.close()
		reqLog := filepath.Join(b.outDir, fmt.Sprintf("%s-n%d-requests.log", b.stamp, n))
		if err := tr.logTo(reqLog, runStart); err != nil {
			return fail("request log: %v", err)
		}
		res.Logs = append(res.Logs, reqLog)
		opKubeconfig = filepath.Join(b.outDir, fmt.Sprintf("%s-n%d-tracer.kubeconfig", b.stamp, n))
		if err := tr.writeKubeconfig(opKubeconfig); err != nil {
			return fail("tracer kubeconfig: %v", err)
		}
		defer func() { _ = os.Remove(opKubeconfig) }()
	}
	kcmPort, _ := c.componentPort("kube-controller-manager")
	schedPort, _ := c.componentPort("kube-scheduler")

	pidFile := filepath.Join(b.outDir, "manager.pid")
	logPath := filepath.Join(b.outDir, fmt.Sprintf("%s-n%d-manager.log", b.stamp, n))
	res.Logs = append(res.Logs, logPath)
	op, err := startOperator(ctx, b.manager, opKubeconfig, logPath, pidFile, b.cfg.OperatorArgs)
	if err != nil {
		return fail("operator: %v", err)
	}
	defer func() { op.stop() }() // op is replaced at the restart
	sampler := startRSSSampler(op.pid, 100*time.Millisecond)
	defer func() { sampler.close() }()

	// Startup: discovery, informer lists; settled when no request for 2 s.
	mStart, last, quiet, err := waitQuiet(ctx, op, 2*time.Second, 60*time.Second, op.started)
	if err != nil {
		return fail("startup: %v", err)
	}
	res.Startup.Requests = int(mStart.totalRequests())
	res.Startup.Seconds = round3(last.Sub(op.started).Seconds())
	if p, err := readProc(op.pid); err == nil {
		res.Startup.CPUSeconds, res.Startup.RSSMiB = round3(p.CPUSeconds), round1(mib(p.RSS))
	}
	logf("operator pid %d started: %d requests until quiet (%v) after %.2fs", op.pid, res.Startup.Requests, quiet, res.Startup.Seconds)

	mark := func(what string) { tr.mark(what); trk.mark(what) }
	mark("converge")
	cpu0, self0 := c.componentCPU(), selfCPU()
	if err := b.converge(ctx, res, k8s, trk, tr, op, sampler, servers, kcmPort, schedPort); err != nil {
		return fail("converge: %v", err)
	}
	res.Converge.ClusterCPU = subMaps(cpu0, c.componentCPU())
	res.Converge.BenchCPU = round3(selfCPU() - self0)
	mark("idle")
	if err := b.idle(ctx, res, k8s, trk, tr, op, sampler, servers); err != nil {
		return fail("idle: %v", err)
	}
	mark("spec change")
	if err := b.specChange(ctx, res, k8s, trk, tr, op, servers[0]); err != nil {
		res.SpecChange.Error = err.Error()
		logf("spec change: %v", err)
		if ctx.Err() != nil {
			return fail("interrupted")
		}
	}

	// Restart: stop, start again, count until quiet, compare resourceVersions.
	before, err := resourceVersions(ctx, k8s, res.Namespaces, n)
	if err != nil {
		return fail("restart: listing objects: %v", err)
	}
	mark("restart")
	trBefore := tr.snapshot()
	op.stop()
	sampler.close()
	logPath = filepath.Join(b.outDir, fmt.Sprintf("%s-n%d-manager-restart.log", b.stamp, n))
	res.Logs = append(res.Logs, logPath)
	op, err = startOperator(ctx, b.manager, opKubeconfig, logPath, pidFile, b.cfg.OperatorArgs)
	if err != nil {
		return fail("restart: %v", err)
	}
	sampler = startRSSSampler(op.pid, 100*time.Millisecond)
	maxWait := 2*time.Minute + time.Duration(n)*time.Second
	mR, last, quiet, err := waitQuiet(ctx, op, b.cfg.Quiet, maxWait, op.started)
	if err != nil {
		res.Restart.Error = err.Error()
	}
	res.Restart.Quiet = quiet
	res.Restart.QuietAfterSeconds = round3(last.Sub(op.started).Seconds())
	res.Restart.Metrics = opMetrics{}.delta(mR)
	trAfter := tr.snapshot()
	res.Restart.Trace = trBefore.delta(trAfter)
	if !trAfter.last.IsZero() && trAfter.last.After(op.started) {
		// the tracer saw the last request itself (the metrics poll has a 200 ms grain)
		res.Restart.QuietAfterSeconds = round3(trAfter.last.Sub(op.started).Seconds())
	}
	if p, err := readProc(op.pid); err == nil {
		res.Restart.CPUSeconds, res.Restart.RSSMiB, res.Restart.PeakRSSMiB = round3(p.CPUSeconds), round1(mib(p.RSS)), round1(mib(p.HWM))
	}
	after, err := resourceVersions(ctx, k8s, res.Namespaces, n)
	if err != nil {
		return fail("restart: listing objects: %v", err)
	}
	res.Restart.ObjectsChanged = diffVersions(before, after)
	res.Restart.ReadyAfter = countReady(ctx, k8s, servers)
	mark("end")
	logf("restart: %d requests (%d writes), quiet after %.2fs (quiet=%v), %d objects changed, %d/%d Ready",
		res.Restart.Metrics.RequestsTotal, res.Restart.Metrics.Writes, res.Restart.QuietAfterSeconds, quiet,
		len(res.Restart.ObjectsChanged), res.Restart.ReadyAfter, n)
	return res
}

// prepareNamespaces creates the namespaces with the sample Secrets and returns the keys of the
// servers to create (round-robin over the namespaces).
func (b *bench) prepareNamespaces(ctx context.Context, k8s client.Client, n, nns int) ([]types.NamespacedName, error) {
	secrets, err := sampleSecrets(b.root)
	if err != nil {
		return nil, err
	}
	for i := 0; i < nns; i++ {
		ns := nsName(n, i)
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
		for _, s := range secrets {
			s := s.DeepCopy()
			s.Namespace = ns
			if err := k8s.Create(ctx, s); err != nil {
				return nil, err
			}
		}
	}
	// Pods need the namespace's default ServiceAccount (kube-controller-manager creates it).
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < nns; i++ {
		for {
			err := k8s.Get(ctx, types.NamespacedName{Namespace: nsName(n, i), Name: "default"}, &corev1.ServiceAccount{})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no default ServiceAccount in %s after 60 s: %w", nsName(n, i), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	keys := make([]types.NamespacedName, n)
	for j := 0; j < n; j++ {
		keys[j] = types.NamespacedName{Namespace: nsName(n, j%nns), Name: fmt.Sprintf("ds-%03d", j)}
	}
	return keys, nil
}

func nsName(n, i int) string { return fmt.Sprintf("bench-n%d-%02d", n, i) }

func sampleSecrets(root string) ([]*corev1.Secret, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "samples", "dittofs_secrets.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*corev1.Secret
	for _, doc := range strings.Split(string(data), "\n---") {
		s := &corev1.Secret{}
		if err := yaml.Unmarshal([]byte(doc), s); err != nil {
			return nil, err
		}
		if s.Name != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func sampleServer(root string) (*v1alpha1.DittoServer, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))
	if err != nil {
		return nil, err
	}
	ds := &v1alpha1.DittoServer{}
	if err := yaml.Unmarshal(data, ds); err != nil {
		return nil, err
	}
	return ds, nil
}

type snapshot struct {
	m    opMetrics
	p    procStat
	tr   traceSnapshot
	kcm  map[string]float64
	sch  map[string]float64
	time time.Time
}

func take(op *operator, tr *tracer, kcmPort, schedPort int) (snapshot, error) {
	s := snapshot{time: time.Now()}
	var err error
	if s.m, err = scrapeOperator(op.metricsPort); err != nil {
		return s, err
	}
	if s.p, err = readProc(op.pid); err != nil {
		return s, err
	}
	s.tr = tr.snapshot()
	if kcmPort > 0 {
		s.kcm, _ = componentRequests(kcmPort)
	}
	if schedPort > 0 {
		s.sch, _ = componentRequests(schedPort)
	}
	return s, nil
}

func subMaps(a, b map[string]float64) map[string]float64 {
	if a == nil || b == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = round3(d)
		}
	}
	return out
}

// waitQuiet polls the operator's request counter until it has not moved for quiet. It returns
// the last metrics, the time of the last change (at least since) and whether it got quiet
// before max.
func waitQuiet(ctx context.Context, op *operator, quiet, max time.Duration, since time.Time) (opMetrics, time.Time, bool, error) {
	deadline := time.Now().Add(max)
	lastChange := since
	lastTotal := -1.0
	var m opMetrics
	for {
		if !op.alive() {
			return m, lastChange, false, fmt.Errorf("the operator exited\n%s", tail(op.log, 30))
		}
		cur, err := scrapeOperator(op.metricsPort)
		now := time.Now()
		if err == nil {
			m = cur
			if t := cur.totalRequests(); t != lastTotal {
				if lastTotal >= 0 {
					lastChange = now
				}
				lastTotal = t
			}
			if now.Sub(lastChange) >= quiet {
				return m, lastChange, true, nil
			}
		}
		if now.After(deadline) {
			return m, lastChange, false, nil
		}
		select {
		case <-ctx.Done():
			return m, lastChange, false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (b *bench) converge(ctx context.Context, res *runResult, k8s client.Client, trk *tracker, tr *tracer, op *operator,
	sampler *rssSampler, servers []types.NamespacedName, kcmPort, schedPort int) error {
	sample, err := sampleServer(b.root)
	if err != nil {
		return err
	}
	s0, err := take(op, tr, kcmPort, schedPort)
	if err != nil {
		return err
	}
	sampler.reset()
	t0 := time.Now()
	work := make(chan types.NamespacedName)
	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				ds := sample.DeepCopy()
				ds.Name, ds.Namespace = key.Name, key.Namespace
				trk.setApplied(key.String(), time.Now())
				if err := k8s.Create(ctx, ds); err != nil {
					errs <- fmt.Errorf("creating %s: %w", key, err)
				}
			}
		}()
	}
	for _, k := range servers {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	res.Converge.ApplySeconds = round3(time.Since(t0).Seconds())
	logf("converge: %d DittoServers created in %.2fs", len(servers), res.Converge.ApplySeconds)

	timeout := b.cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 2*time.Minute + time.Duration(len(servers))*2*time.Second
	}
	ready := waitFor(ctx, trk, servers, timeout, "Ready", func(s *crState) bool { _, ok := s.readyAt[1]; return ok })
	res.Converge.Ready = ready
	if ready < len(servers) {
		return fmt.Errorf("%d/%d Ready after %s (operator log: %s)", ready, len(servers), timeout, op.log)
	}
	var lat, stsLat, depLat, podLat, afterPods []float64
	var lastReady time.Time
	trk.mu.Lock()
	for _, k := range servers {
		s := trk.crs[k.String()]
		r := s.readyAt[1]
		if r.After(lastReady) {
			lastReady = r
		}
		lat = append(lat, r.Sub(s.applied).Seconds())
		if !s.stsSeen.IsZero() {
			stsLat = append(stsLat, s.stsSeen.Sub(s.applied).Seconds())
		}
		if !s.deployedAt.IsZero() {
			depLat = append(depLat, s.deployedAt.Sub(s.applied).Seconds())
		}
		if rolled, ok := s.rolledAt[s.firstHash]; ok {
			podLat = append(podLat, rolled.Sub(s.applied).Seconds())
			afterPods = append(afterPods, r.Sub(rolled).Seconds())
		}
	}
	trk.mu.Unlock()
	res.Converge.AllReadySeconds = round3(lastReady.Sub(t0).Seconds())
	res.Converge.ReadyLatency = latencyOf(lat)
	res.Converge.StatefulSetLat = latencyOf(stsLat)
	res.Converge.DeployedLatency = latencyOf(depLat)
	res.Converge.PodReadyLatency = latencyOf(podLat)
	res.Converge.ReadyAfterPodsLat = latencyOf(afterPods)
	logf("converge: all %d Ready %.2fs after the first create (per CR p50 %.2fs p99 %.2fs)",
		len(servers), res.Converge.AllReadySeconds, res.Converge.ReadyLatency.P50, res.Converge.ReadyLatency.P99)

	_, last, _, err := waitQuiet(ctx, op, b.cfg.Quiet, 2*time.Minute, lastReady)
	if err != nil {
		return err
	}
	res.Converge.QuietSeconds = round3(last.Sub(t0).Seconds())
	s1, err := take(op, tr, kcmPort, schedPort)
	if err != nil {
		return err
	}
	n := float64(len(servers))
	res.Converge.Metrics = s0.m.delta(s1.m)
	res.Converge.RequestsPerCR = round2(float64(res.Converge.Metrics.RequestsTotal) / n)
	res.Converge.WritesPerCR = round2(float64(res.Converge.Metrics.Writes) / n)
	res.Converge.ReconcilesCR = map[string]float64{}
	for k, v := range res.Converge.Metrics.Reconciles {
		res.Converge.ReconcilesCR[strings.Fields(k)[0]] += round2(float64(v) / n)
	}
	res.Converge.Trace = s0.tr.delta(s1.tr)
	if res.Converge.Trace != nil {
		res.Converge.TracePerCR = map[string]float64{}
		for k, v := range res.Converge.Trace.Requests {
			res.Converge.TracePerCR[k] = round2(float64(v) / n)
		}
	}
	res.Converge.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	res.Converge.PeakRSSMiB = round1(mib(s1.p.HWM))
	res.Converge.RSSAfterMiB = round1(mib(s1.p.RSS))
	res.Converge.AnonAfterMiB = round1(mib(s1.p.Anon))
	res.Converge.FileAfterMiB = round1(mib(s1.p.File))
	res.Converge.HeapInuseMiB = round1(s1.m.HeapInuse / (1 << 20))
	res.Converge.KCMRequests = subMaps(s0.kcm, s1.kcm)
	res.Converge.SchedRequests = subMaps(s0.sch, s1.sch)
	logf("converge: %d requests (%.2f per CR, %.2f writes per CR), %d reconciles, %.2f CPU s, peak RSS %.1f MiB",
		res.Converge.Metrics.RequestsTotal, res.Converge.RequestsPerCR, res.Converge.WritesPerCR,
		res.Converge.Metrics.ReconcilesTotal, res.Converge.CPUSeconds, res.Converge.PeakRSSMiB)
	return nil
}

// waitFor waits until cond holds for every server (or the timeout) and returns how many it holds for.
func waitFor(ctx context.Context, trk *tracker, servers []types.NamespacedName, timeout time.Duration, what string, cond func(*crState) bool) int {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		count, sts, deployed := 0, 0, 0
		trk.mu.Lock()
		for _, k := range servers {
			s := trk.get(k.String())
			if cond(s) {
				count++
			}
			if !s.stsSeen.IsZero() {
				sts++
			}
			if !s.deployedAt.IsZero() {
				deployed++
			}
		}
		trk.mu.Unlock()
		if count == len(servers) || time.Now().After(deadline) || ctx.Err() != nil {
			return count
		}
		if time.Since(lastLog) >= 5*time.Second {
			logf("  %s %d/%d (StatefulSets %d, Helm deployed %d)", what, count, len(servers), sts, deployed)
			lastLog = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bench) idle(ctx context.Context, res *runResult, k8s client.Client, trk *tracker, tr *tracer, op *operator,
	sampler *rssSampler, servers []types.NamespacedName) error {
	before, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return err
	}
	s0, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	sampler.reset()
	logf("idle: %s", b.cfg.Idle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.cfg.Idle):
	}
	s1, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	res.Idle.Seconds = round3(s1.time.Sub(s0.time).Seconds())
	res.Idle.Metrics = s0.m.delta(s1.m)
	res.Idle.Trace = s0.tr.delta(s1.tr)
	res.Idle.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	res.Idle.RSSSettledMiB = round1(mib(s1.p.RSS))
	res.Idle.AnonSettledMiB = round1(mib(s1.p.Anon))
	res.Idle.FileSettledMiB = round1(mib(s1.p.File))
	res.Idle.PeakRSSMiB = round1(mib(sampler.max()))
	res.Idle.HeapInuseMiB = round1(s1.m.HeapInuse / (1 << 20))
	after, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return err
	}
	res.Idle.ResourceChange = diffVersions(before, after)
	res.Idle.ReadyAtEnd = countReady(ctx, k8s, servers)
	logf("idle: %d reconciles, %d writes, %d requests, %.2f CPU s, RSS %.1f MiB, %d objects changed",
		res.Idle.Metrics.ReconcilesTotal, res.Idle.Metrics.Writes, res.Idle.Metrics.RequestsTotal,
		res.Idle.CPUSeconds, res.Idle.RSSSettledMiB, len(res.Idle.ResourceChange))
	return nil
}

func (b *bench) specChange(ctx context.Context, res *runResult, k8s client.Client, trk *tracker, tr *tracer, op *operator, key types.NamespacedName) error {
	res.SpecChange.Server = key.String()
	var oldHash string
	trk.with(key.String(), func(s *crState) { oldHash = s.hash })
	s0, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	ds := &v1alpha1.DittoServer{}
	patch := []byte(`{"spec":{"database":{"sqlite":{"path":"/data/controlplane/bench-changed.db"}}}}`)
	t0 := time.Now()
	ds.Name, ds.Namespace = key.Name, key.Namespace
	if err := k8s.Patch(ctx, ds, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return err
	}
	gen := ds.Generation
	servers := []types.NamespacedName{key}
	if waitFor(ctx, trk, servers, 2*time.Minute, "new hash and Ready", func(s *crState) bool {
		_, ready := s.readyAt[gen]
		return ready && s.hash != oldHash
	}) != 1 {
		return fmt.Errorf("%s: no new config hash and Ready=True (generation %d) after 2 minutes", key, gen)
	}
	trk.with(key.String(), func(s *crState) {
		res.SpecChange.HashSeconds = round3(s.hashSeen[s.hash].Sub(t0).Seconds())
		res.SpecChange.ReadySeconds = round3(s.readyAt[gen].Sub(t0).Seconds())
		if r, ok := s.rolledAt[s.hash]; ok {
			res.SpecChange.RolledSeconds = round3(r.Sub(t0).Seconds())
		}
		if s.cmChanged.After(t0) {
			res.SpecChange.ConfigMapSeconds = round3(s.cmChanged.Sub(t0).Seconds())
		}
	})
	_, last, _, err := waitQuiet(ctx, op, b.cfg.Quiet, time.Minute, time.Now())
	if err != nil {
		return err
	}
	res.SpecChange.QuietSeconds = round3(last.Sub(t0).Seconds())
	s1, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	res.SpecChange.Metrics = s0.m.delta(s1.m)
	res.SpecChange.Trace = s0.tr.delta(s1.tr)
	res.SpecChange.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	logf("spec change of %s: ConfigMap %.3fs, new hash %.3fs, rolled %.3fs, Ready %.3fs; %d requests (%d writes), %d reconciles",
		key, res.SpecChange.ConfigMapSeconds, res.SpecChange.HashSeconds, res.SpecChange.RolledSeconds, res.SpecChange.ReadySeconds,
		res.SpecChange.Metrics.RequestsTotal, res.SpecChange.Metrics.Writes, res.SpecChange.Metrics.ReconcilesTotal)
	return nil
}

// resourceVersions lists the objects of the benchmark's namespaces the operator could write
// (direct to the API server).
func resourceVersions(ctx context.Context, k8s client.Client, nns, n int) (map[string]string, error) {
	out := map[string]string{}
	for i := 0; i < nns; i++ {
		ns := client.InNamespace(nsName(n, i))
		lists := map[string]client.ObjectList{
			"DittoServer": &v1alpha1.DittoServerList{}, "StatefulSet": &appsv1.StatefulSetList{},
			"ConfigMap": &corev1.ConfigMapList{}, "Service": &corev1.ServiceList{}, "Secret": &corev1.SecretList{},
		}
		for kind, l := range lists {
			if err := k8s.List(ctx, l, ns); err != nil {
				return nil, err
			}
			items, err := metaItems(l)
			if err != nil {
				return nil, err
			}
			for _, o := range items {
				out[kind+" "+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
			}
		}
	}
	return out, nil
}

func metaItems(l client.ObjectList) ([]metav1.Object, error) {
	var out []metav1.Object
	switch t := l.(type) {
	case *v1alpha1.DittoServerList:
		for i := range t.Items {
			out = append(out, &t.Items[i])
		}
	case *appsv1.StatefulSetList:
		for i := range t.Items {
			out = append(out, &t.Items[i])
		}
	case *corev1.ConfigMapList:
		for i := range t.Items {
			out = append(out, &t.Items[i])
		}
	case *corev1.ServiceList:
		for i := range t.Items {
			out = append(out, &t.Items[i])
		}
	case *corev1.SecretList:
		for i := range t.Items {
			out = append(out, &t.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list %T", l)
	}
	return out, nil
}

// diffVersions names the objects added, removed or changed between two listings. StatefulSets
// are written by kube-controller-manager too (status), so only their non-status changes would
// matter; the list reports every change and the reader can tell them apart by the log.
func diffVersions(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		switch old, ok := a[k]; {
		case !ok:
			out = append(out, "added "+k)
		case old != v:
			out = append(out, "changed "+k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		}
	}
	sort.Strings(out)
	return out
}

func countReady(ctx context.Context, k8s client.Client, servers []types.NamespacedName) int {
	n := 0
	for _, k := range servers {
		ds := &v1alpha1.DittoServer{}
		if err := k8s.Get(ctx, k, ds); err != nil {
			continue
		}
		for _, c := range ds.Status.Conditions {
			if c.Type == "Ready" && c.Status == metav1.ConditionTrue && c.ObservedGeneration == ds.Generation {
				n++
			}
		}
	}
	return n
}

// Output.

func printRun(r *runResult) {
	if r.Converge.Trace == nil {
		return
	}
	fmt.Printf("\nN=%d: operator requests per converged DittoServer, by verb, resource and code (tracer):\n", r.N)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, k := range sortedKeys(r.Converge.Trace.Requests) {
		_, _ = fmt.Fprintf(w, "%.2f\t%d\t  %s\n", r.Converge.TracePerCR[k], r.Converge.Trace.Requests[k], k)
	}
	_ = w.Flush()
	for _, ph := range []struct {
		name string
		t    *traceDelta
	}{{"idle", r.Idle.Trace}, {"spec change", r.SpecChange.Trace}, {"restart", r.Restart.Trace}} {
		if ph.t == nil || len(ph.t.Requests) == 0 {
			continue
		}
		fmt.Printf("N=%d %s (%d requests without watches):\n", r.N, ph.name, ph.t.Total)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, k := range sortedKeys(ph.t.Requests) {
			_, _ = fmt.Fprintf(w, "%d\t  %s\n", ph.t.Requests[k], k)
		}
		_ = w.Flush()
	}
}

func printTable(rep *report) {
	fmt.Printf("\n==== results (%d CPUs %s, %s; operator args %q)\n", rep.Machine.Nproc, rep.Machine.CPUModel, rep.Machine.MemTotal, rep.Config.OperatorArgs)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	header := "metric"
	for _, r := range rep.Runs {
		header += fmt.Sprintf("\tN=%d", r.N)
	}
	_, _ = fmt.Fprintln(w, header+"\t")
	row := func(name string, f func(r *runResult) string) {
		line := name
		for _, r := range rep.Runs {
			line += "\t" + f(r)
		}
		_, _ = fmt.Fprintln(w, line+"\t")
	}
	row("namespaces / kwok nodes", func(r *runResult) string { return fmt.Sprintf("%d / %d", r.Namespaces, r.Nodes) })
	row("error", func(r *runResult) string {
		if r.Error == "" {
			return "-"
		}
		return "yes (see JSON)"
	})
	row("all Ready after first create (s)", func(r *runResult) string { return f2(r.Converge.AllReadySeconds) })
	row("per CR Ready p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.ReadyLatency.P50) + " / " + f2(r.Converge.ReadyLatency.P99)
	})
	row("  StatefulSet created p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.StatefulSetLat.P50) + " / " + f2(r.Converge.StatefulSetLat.P99)
	})
	row("  Helm Deployed p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.DeployedLatency.P50) + " / " + f2(r.Converge.DeployedLatency.P99)
	})
	row("  StatefulSet ready (kcm+kwok) p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.PodReadyLatency.P50) + " / " + f2(r.Converge.PodReadyLatency.P99)
	})
	row("  Ready after StatefulSet ready p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.ReadyAfterPodsLat.P50) + " / " + f2(r.Converge.ReadyAfterPodsLat.P99)
	})
	row("API requests per converged CR", func(r *runResult) string { return f2(r.Converge.RequestsPerCR) })
	row("  of which writes (POST/PUT/PATCH/DELETE)", func(r *runResult) string { return f2(r.Converge.WritesPerCR) })
	row("  by method and code (total)", func(r *runResult) string { return mapText(r.Converge.Metrics.Requests) })
	row("reconciles per CR (go / helm)", func(r *runResult) string {
		return f2(r.Converge.ReconcilesCR["dittoserver-go"]) + " / " + f2(r.Converge.ReconcilesCR["dittoserver-helm"])
	})
	row("  by controller and result (total)", func(r *runResult) string { return mapText(r.Converge.Metrics.Reconciles) })
	row("peak operator requests in one second", func(r *runResult) string {
		if r.Converge.Trace == nil {
			return "-"
		}
		return strconv.Itoa(r.Converge.Trace.PeakPerSecond)
	})
	row("operator startup requests", func(r *runResult) string { return strconv.Itoa(r.Startup.Requests) })
	row("CPU seconds (converge)", func(r *runResult) string { return f2(r.Converge.CPUSeconds) })
	row("peak RSS (MiB, VmHWM)", func(r *runResult) string { return f1(r.Converge.PeakRSSMiB) })
	row("RSS after converge / settled after idle (MiB)", func(r *runResult) string {
		return f1(r.Converge.RSSAfterMiB) + " / " + f1(r.Idle.RSSSettledMiB)
	})
	row("  settled RssAnon / RssFile (MiB)", func(r *runResult) string {
		return f1(r.Idle.AnonSettledMiB) + " / " + f1(r.Idle.FileSettledMiB)
	})
	row("heap in use after idle (MiB)", func(r *runResult) string { return f1(r.Idle.HeapInuseMiB) })
	row("CPU s of apiserver / etcd / kcm / kwok / bench", func(r *runResult) string {
		c := r.Converge.ClusterCPU
		return fmt.Sprintf("%s / %s / %s / %s / %s", f1(c["kube-apiserver"]), f1(c["etcd"]), f1(c["kube-controller-manager"]),
			f1(c["kwok-controller"]), f1(r.Converge.BenchCPU))
	})
	row("kcm requests during converge", func(r *runResult) string { return mapTextF(r.Converge.KCMRequests) })
	row("idle (s)", func(r *runResult) string { return f1(r.Idle.Seconds) })
	row("  reconciles / writes / requests", func(r *runResult) string {
		return fmt.Sprintf("%d / %d / %d", r.Idle.Metrics.ReconcilesTotal, r.Idle.Metrics.Writes, r.Idle.Metrics.RequestsTotal)
	})
	row("  objects changed / CPU s", func(r *runResult) string {
		return fmt.Sprintf("%d / %s", len(r.Idle.ResourceChange), f2(r.Idle.CPUSeconds))
	})
	row("spec change: ConfigMap / new hash (s)", func(r *runResult) string {
		return f3(r.SpecChange.ConfigMapSeconds) + " / " + f3(r.SpecChange.HashSeconds)
	})
	row("  StatefulSet rolled / Ready (s)", func(r *runResult) string {
		return f3(r.SpecChange.RolledSeconds) + " / " + f3(r.SpecChange.ReadySeconds)
	})
	row("  requests (writes) / reconciles", func(r *runResult) string {
		return fmt.Sprintf("%d (%d) / %d", r.SpecChange.Metrics.RequestsTotal, r.SpecChange.Metrics.Writes, r.SpecChange.Metrics.ReconcilesTotal)
	})
	row("restart: requests until quiet", func(r *runResult) string { return strconv.Itoa(r.Restart.Metrics.RequestsTotal) })
	row("  quiet after (s) / writes / objects changed", func(r *runResult) string {
		return fmt.Sprintf("%s / %d / %d", f2(r.Restart.QuietAfterSeconds), r.Restart.Metrics.Writes, len(r.Restart.ObjectsChanged))
	})
	row("  reconciles / Ready after", func(r *runResult) string {
		return fmt.Sprintf("%d / %d", r.Restart.Metrics.ReconcilesTotal, r.Restart.ReadyAfter)
	})
	_ = w.Flush()
}

func mapText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", ":"), m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func mapTextF(m map[string]float64) string {
	ints := map[string]int{}
	for k, v := range m {
		ints[k] = int(math.Round(v))
	}
	return mapText(ints)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func f1(v float64) string      { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string      { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string      { return strconv.FormatFloat(v, 'f', 3, 64) }

// Machine description.

func machineInfo() machine {
	m := machine{Nproc: runtime.NumCPU(), Go: runtime.Version()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m.Nproc, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("free", "-g").Output(); err == nil {
		m.FreeG = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// selfCPU is the benchmark's own CPU seconds (its watches and the tracer).
func selfCPU() float64 {
	p, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return p.CPUSeconds
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func gitCommit(root string) string {
	if v := os.Getenv("BENCH_COMMIT"); v != "" { // a build from an export without .git
		return v
	}
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
