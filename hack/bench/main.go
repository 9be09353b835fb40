// Command bench measures the operator on a local kwok control plane (make bench; the method and
// the numbers are in docs/PERFORMANCE.md).
//
// For each N (BENCH_N, default 1,50,200) it creates a fresh kwok cluster (KWOK_CLUSTER, default
// dittofs-bench), installs the CRD, restarts kube-controller-manager, creates ceil(N/BENCH_PER_NS)
// namespaces with random Secrets the servers reference, starts bin/manager as a subprocess (metrics on 127.0.0.1)
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
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	// RaisedNs are the N also run with RaisedKCMArgs: the labelled second line.
	RaisedNs      []int    `json:"raisedN,omitempty"`
	RaisedKCMArgs []string `json:"raisedKubeControllerManagerArgs,omitempty"`
	Manager       string   `json:"manager"`
	Trace         bool     `json:"trace"`
	// OperatorEnv is added to the operator's environment (BENCH_OPERATOR_ENV, KEY=VALUE ...),
	// e.g. GOMEMLIMIT for a tuned line.
	OperatorEnv []string `json:"operatorEnv,omitempty"`
	// Profile takes CPU profiles of the operator while servers converge (BENCH_PROFILE=1).
	Profile    bool   `json:"profile,omitempty"`
	Cluster    string `json:"cluster"`
	K8sVersion string `json:"k8sVersion"`
}

func loadConfig() (benchConfig, error) {
	c := benchConfig{PerNamespace: 10, Idle: 5 * time.Minute, Quiet: 5 * time.Second, Trace: true,
		Cluster: envOr("KWOK_CLUSTER", "dittofs-bench"), K8sVersion: envOr("K8S_VERSION", "v1.35.4")}
	var err error
	if c.Ns, err = parseNs("BENCH_N", envOr("BENCH_N", "1,50,200,1000")); err != nil {
		return c, err
	}
	if v, set := os.LookupEnv("BENCH_RAISED_N"); !set || v != "" {
		if c.RaisedNs, err = parseNs("BENCH_RAISED_N", envOr("BENCH_RAISED_N", "50")); err != nil {
			return c, err
		}
	}
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
	// The targets are measured with kube-controller-manager as users run it (stock: 20 QPS per
	// controller client), which bounds how fast PVCs bind and StatefulSets roll. The N of
	// BENCH_RAISED_N run a second time with its QPS raised, so that the operator's own share
	// shows: the labelled second line.
	c.KCMArgs = strings.Fields(os.Getenv("BENCH_KCM_ARGS"))
	c.RaisedKCMArgs = strings.Fields(envOr("BENCH_RAISED_KCM_ARGS", "--kube-api-qps=1000 --kube-api-burst=2000"))
	c.Manager = os.Getenv("BENCH_MANAGER")
	c.Trace = envOr("BENCH_TRACE", "1") != "0"
	c.Profile = os.Getenv("BENCH_PROFILE") == "1"
	c.OperatorEnv = strings.Fields(os.Getenv("BENCH_OPERATOR_ENV"))
	return c, nil
}

// parseNs parses a comma-separated list of server counts.
func parseNs(name, v string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive number", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
	fmt.Printf("bench: N=%v (kcm args %q), then N=%v with kcm args %q; %d servers per namespace, idle %s, quiet %s, trace %v, operator %s %q\n",
		cfg.Ns, cfg.KCMArgs, cfg.RaisedNs, cfg.RaisedKCMArgs, cfg.PerNamespace, cfg.Idle, cfg.Quiet, cfg.Trace, manager, cfg.OperatorArgs)
	fmt.Printf("machine: %d CPUs (%s), memory %s, load %s\n", rep.Machine.Nproc, rep.Machine.CPUModel, rep.Machine.MemTotal, loadAvg())

	b := &bench{cfg: cfg, root: root, outDir: outDir, manager: manager, kubectl: kubectl, stamp: stamp}
	rep.Config = cfg
	rep.Config.Manager = manager
	var runs []runSpec
	for _, n := range cfg.Ns {
		runs = append(runs, runSpec{n: n, kcm: kcmStock, kcmArgs: cfg.KCMArgs})
	}
	for _, n := range cfg.RaisedNs {
		runs = append(runs, runSpec{n: n, kcm: kcmRaised, kcmArgs: cfg.RaisedKCMArgs})
	}
	for _, spec := range runs {
		if ctx.Err() != nil {
			break
		}
		res := b.runOne(ctx, spec)
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

// runSpec is one run: N servers on a cluster whose kube-controller-manager has kcmArgs.
type runSpec struct {
	n       int
	kcm     string // kcmStock or kcmRaised
	kcmArgs []string
}

const (
	kcmStock  = "stock"
	kcmRaised = "raised"
)

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

// runOne measures one N on a fresh cluster with a fresh operator. The phases run in this order,
// each recording into the result; the first that fails ends the run (a failed spec change is
// recorded and the run goes on). Teardown stops what the phases started, in any case.
func (b *bench) runOne(parent context.Context, spec runSpec) *runResult {
	res := &runResult{N: spec.n, KCM: spec.kcm, KCMArgs: spec.kcmArgs, LoadAvg: loadAvg()}
	res.Namespaces = (spec.n + b.cfg.PerNamespace - 1) / b.cfg.PerNamespace
	fmt.Printf("\n==== %s (%d namespaces, kube-controller-manager args %q)\n", res.label(), res.Namespaces, spec.kcmArgs)
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	br := &benchRun{bench: b, res: res, cancel: cancel}
	defer br.teardown()

	if err := br.clusterUp(ctx); err != nil {
		return br.fail(err)
	}
	if err := br.prepare(ctx); err != nil {
		return br.fail(err)
	}
	if err := br.startup(ctx); err != nil {
		return br.fail(err)
	}
	if err := br.converge(ctx); err != nil {
		return br.fail(fmt.Errorf("converge: %w", err))
	}
	if err := br.idle(ctx); err != nil {
		return br.fail(fmt.Errorf("idle: %w", err))
	}
	if err := br.specChange(ctx); err != nil {
		res.SpecChange.Error = err.Error()
		logf("spec change: %v", err)
		if ctx.Err() != nil {
			return br.fail(errors.New("interrupted"))
		}
	}
	if err := br.restart(ctx); err != nil {
		return br.fail(err)
	}
	return res
}

// benchRun is one run (one N): the handles its phases share, set by the phase that creates
// them, and what teardown has to undo.
type benchRun struct {
	*bench
	res     *runResult
	cancel  context.CancelFunc // of the run's context: stops the benchmark's watches
	c       *cluster
	restCfg *rest.Config // admin access to the cluster
	sch     *k8sruntime.Scheme
	k8s     client.Client
	servers []types.NamespacedName
	trk     *tracker
	tr      *tracer // nil without BENCH_TRACE

	kcmPort, schedPort int
	// how the operator reaches the API server: the cluster's kubeconfig or the tracer's
	opKubeconfig string
	pidFile      string
	op           *operator   // replaced at the restart
	sampler      *rssSampler // of op
	teardowns    []func()
}

// fail records the error that ends the run.
func (br *benchRun) fail(err error) *runResult {
	br.res.Error = err.Error()
	logf("ERROR: %s", br.res.Error)
	return br.res
}

// mark writes a phase marker into the request log and the timeline.
func (br *benchRun) mark(what string) { br.tr.mark(what); br.trk.mark(what) }

// onTeardown registers f for teardown, which runs it before the ones registered earlier.
func (br *benchRun) onTeardown(f func()) { br.teardowns = append(br.teardowns, f) }

// teardown runs the registered functions last first, each as a defer, so that they run as if
// runOne had deferred them (the operator stops before the tracer it talks through, the watches
// before the cluster goes) and a panicking one does not keep the cluster from being deleted.
func (br *benchRun) teardown() {
	for _, f := range br.teardowns {
		defer f() //nolint:gocritic // deferInLoop: deliberate, see above
	}
}
