// Package chaos is the fault suite: the operator binary on a local kwok control plane (real
// garbage collector and StatefulSet controller, test/kwok) is SIGKILLed at random moments while a
// workload creates, updates, deletes and re-creates DittoServers; the API server is restarted
// mid-reconcile; two replicas run with leader election and the leader is killed; Helm release
// Secrets are left pending-* while the operator is down. Then every server must converge to its
// spec with nothing lost (PVCs, generated credentials, Percona clusters), no duplicate objects,
// no pending release and no write for a quiet period. docs/RELIABILITY.md describes it.
//
// Env: CHAOS_KILLS (SIGKILLs of the operator, default 8; make chaos runs 100), CHAOS_SERVERS
// (default 6), CHAOS_SEED (default: the clock; logged, replays the same choices),
// CHAOS_CHECK_EVERY (kills between convergence checkpoints, default 0: only the one after the
// API server restart and the final one), CHAOS_LEADER_KILLS (default 1), CHAOS_QUIET (default
// 10s), CHAOS_CONVERGE_TIMEOUT (one wait for convergence, default 45s), CHAOS_REPORT (default
// bin/chaos/short.json; the operators' and control plane's logs go next to it).
package chaos

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/test/kwok"
)

const (
	namespace = "dittofs-chaos"
	// leaseName is the operator's leader-election Lease (main.go).
	leaseName = "dittofs-operator.dittofs.com"
	// cleanupMargin is kept from the test's deadline for the cleanups (operators, cluster).
	cleanupMargin = 90 * time.Second
)

// config comes from the environment.
type config struct {
	Kills, Servers, CheckEvery, LeaderKills int
	Seed                                    int64
	Quiet, Converge                         time.Duration
	Report                                  string
}

func loadConfig(t *testing.T, root string) config {
	t.Helper()
	cfg := config{Kills: 8, Servers: 6, LeaderKills: 1, Seed: time.Now().UnixNano(), Quiet: 10 * time.Second, Converge: 45 * time.Second,
		Report: filepath.Join(root, "bin", "chaos", "short.json")}
	ints := map[string]*int{"CHAOS_KILLS": &cfg.Kills, "CHAOS_SERVERS": &cfg.Servers, "CHAOS_CHECK_EVERY": &cfg.CheckEvery, "CHAOS_LEADER_KILLS": &cfg.LeaderKills}
	for name, p := range ints {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, name)
			require.GreaterOrEqual(t, n, 0, name)
			*p = n
		}
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
		cfg.Seed = n
	}
	for name, p := range map[string]*time.Duration{"CHAOS_QUIET": &cfg.Quiet, "CHAOS_CONVERGE_TIMEOUT": &cfg.Converge} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			require.NoError(t, err, name)
			*p = d
		}
	}
	if v := os.Getenv("CHAOS_REPORT"); v != "" {
		cfg.Report = v
	}
	require.GreaterOrEqual(t, cfg.Servers, 2, "CHAOS_SERVERS")
	return cfg
}

// run is one execution of the suite.
type run struct {
	t       *testing.T
	start   time.Time
	cfg     config
	c       *kwok.Cluster
	k8s     client.Client
	manager string
	logDir  string
	// deadline: phases stop starting work after it (the test's own deadline minus the cleanups).
	deadline time.Time
	rng      *rand.Rand // the main goroutine's; the workload has its own
	sample   *v1alpha1.DittoServer

	opMu sync.Mutex
	ops  []*kwok.Operator // every operator process started, for the cleanup
	opN  int
	op   *kwok.Operator // the single operator of the chaos and pending phases

	// gate pauses the workload: it holds the read lock for each operation, a pause takes the
	// write lock.
	gate    sync.RWMutex
	servers []*server
	ledger  *ledger
	percona bool
	rep     *report

	// pair: the two replicas of the leader-election phase; lastFault: when the last fault was
	pair      []*kwok.Operator
	lastFault time.Time
	// checkedKills: kills up to the last checkpoint
	checkedKills int

	// setAside: servers that did not converge even after an operator restart (see settle)
	setAside map[string]bool

	surpriseMu sync.Mutex
	surprises  []violation
}

func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: skipped in -short mode")
	}
	start := time.Now()
	c := kwok.NewCluster(t, fmt.Sprintf("dittofs-chaos-%d", os.Getpid()))
	cfg := loadConfig(t, c.Root)
	r := &run{t: t, start: start, cfg: cfg, c: c, rng: rand.New(rand.NewSource(cfg.Seed)), ledger: newLedger(), setAside: map[string]bool{},
		rep: &report{Seed: cfg.Seed, Config: cfg, Started: start.UTC().Format(time.RFC3339), SetAside: map[string][]string{}}}
	r.rep.Commit = commit(c.Root)
	t.Logf("operator %s; seed %d; replay with CHAOS_SEED=%d CHAOS_KILLS=%d CHAOS_SERVERS=%d CHAOS_CHECK_EVERY=%d CHAOS_LEADER_KILLS=%d (operations and timings are drawn from the seed; the interleaving with the operator is not)",
		r.rep.Commit, cfg.Seed, cfg.Seed, cfg.Kills, cfg.Servers, cfg.CheckEvery, cfg.LeaderKills)
	r.deadline = start.Add(24 * time.Hour)
	if d, ok := t.Deadline(); ok {
		r.deadline = d.Add(-cleanupMargin)
	}
	r.logDir = strings.TrimSuffix(cfg.Report, ".json") + "-logs"
	require.NoError(t, os.RemoveAll(r.logDir))
	require.NoError(t, os.MkdirAll(r.logDir, 0o755))
	t.Cleanup(func() { r.writeReport(time.Since(start)) })

	r.setup()
	r.baseline()
	r.chaos()
	r.pendingReleases()
	r.leaderElection()
	r.final()
	t.Logf("done in %s (before cleanup): %s", time.Since(start).Round(time.Second), r.rep.summary())
}

// commit names the operator's source as tested (read-only git).
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if dirty, err := exec.Command("git", "-C", root, "status", "--porcelain", "--", "main.go", "api", "internal", "helm-charts", "watches.yaml").Output(); err == nil && len(dirty) > 0 {
		c += "+dirty"
	}
	return c
}

// logf logs with the time since the start of the test.
func (r *run) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("[%6.1fs] "+format, append([]any{time.Since(r.start).Seconds()}, args...)...)
}

// phase logs the start of a phase and returns a function that logs its duration.
func (r *run) phase(name string) func() {
	r.logf("== %s", name)
	start := time.Now()
	return func() { r.logf("== %s done in %s", name, time.Since(start).Round(time.Millisecond)) }
}

func (r *run) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// timeLeft is how long the phases may still run.
func (r *run) timeLeft() time.Duration { return time.Until(r.deadline) }

// setup starts the cluster, installs the CRDs (DittoServer, and PerconaPGCluster when its CRD is
// available), the user Secrets of the samples and an expandable default StorageClass, and starts
// the operator.
func (r *run) setup() {
	t := r.t
	defer r.phase("setup")()
	phase := time.Now()
	r.manager = kwok.BuildManager(t, r.c.Root)
	t.Logf("bin/manager ready in %s", time.Since(phase).Round(time.Millisecond))

	phase = time.Now()
	r.c.Up()
	t.Cleanup(r.copyClusterLogs) // before the cluster is deleted
	_, r.k8s = r.c.Client()
	crds := []string{"dittoservers.dittofs.dittofs.com"}
	paths := []string{filepath.Join(r.c.Root, "config", "crd", "bases")}
	if dir, err := perconaCRD(t); err != nil {
		t.Logf("no Percona servers in the mix: %v", err)
	} else {
		r.percona = true
		crds = append(crds, "perconapgclusters.pgv2.percona.com")
		paths = append(paths, dir)
	}
	r.c.InstallCRDs(crds, paths...)
	r.c.MustKubectl("create", "namespace", namespace)
	// The user's own Secrets of every third server, made as the samples' comments say: with
	// generated values, never literal ones.
	r.c.MustKubectl("create", "secret", "generic", userJWTSecret, "-n", namespace, "--from-literal=secret="+randomString(t, 36))
	r.c.MustKubectl("create", "secret", "generic", userAdminSecret, "-n", namespace, "--from-literal=password="+randomString(t, 18))
	ctx, cancel := r.ctx()
	defer cancel()
	sc := &storagev1.StorageClass{}
	require.NoError(t, r.k8s.Get(ctx, client.ObjectKey{Name: "standard"}, sc))
	sc.AllowVolumeExpansion = ptr.To(true)
	require.NoError(t, r.k8s.Update(ctx, sc))
	t.Logf("cluster %s up, CRDs installed (Percona: %v) in %s", r.c.Name, r.percona, time.Since(phase).Round(time.Millisecond))

	raw, err := os.ReadFile(filepath.Join(r.c.Root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))
	require.NoError(t, err)
	r.sample = &v1alpha1.DittoServer{}
	require.NoError(t, yaml.Unmarshal(raw, r.sample))

	t.Cleanup(func() {
		r.opMu.Lock()
		defer r.opMu.Unlock()
		if t.Failed() && r.op != nil {
			var lines []string
			for _, l := range strings.Split(r.op.LogTail(20), "\n") {
				if len(l) > 400 {
					l = l[:400] + "..."
				}
				lines = append(lines, l)
			}
			t.Logf("last operator log tail (%s):\n%s", r.op.Log, strings.Join(lines, "\n"))
		}
		for _, op := range r.ops {
			if exited, _ := op.Exited(); !exited {
				_ = op.Stop(10 * time.Second)
			}
		}
	})
	r.op = r.startOperator()
	require.NoError(t, r.op.WaitReady(60*time.Second))
	if r.percona {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go r.fakePercona(ctx)
	}
}

// copyClusterLogs keeps the control plane's logs with the operators' (kube-apiserver,
// kube-controller-manager, ...), for a failure to be read after the cluster is gone.
func (r *run) copyClusterLogs() {
	r.c.CopyLogs(filepath.Join(r.logDir, "cluster"))
}

// startOperator starts one more operator process (on kwok: no DittoFS REST API to manage).
func (r *run) startOperator(extra ...string) *kwok.Operator {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	r.opN++
	op, err := kwok.StartOperator(kwok.OperatorOptions{
		Manager: r.manager, Kubeconfig: r.c.Kubeconfig,
		Log:  filepath.Join(r.logDir, fmt.Sprintf("manager-%03d.log", r.opN)),
		Args: append([]string{"--manage-control-plane=false"}, extra...),
	})
	require.NoError(r.t, err)
	r.ops = append(r.ops, op)
	r.rep.OperatorProcesses = r.opN
	return op
}

// baseline creates the servers and waits until they converge before any fault.
func (r *run) baseline() {
	defer r.phase("baseline")()
	r.servers = profiles(r.cfg.Servers, r.percona)
	ctx, cancel := r.ctx()
	defer cancel()
	for _, s := range r.servers {
		require.NoError(r.t, r.k8s.Create(ctx, r.newServer(s)), s.name)
		s.wantExists = true
		s.creates++
	}
	d := r.mustConverge("baseline", time.Now())
	r.rep.BaselineConvergeSeconds = secs(d)
	var names []string
	for _, s := range r.servers {
		names = append(names, s.String())
	}
	r.logf("%d servers Ready in %s: %s", len(r.servers), d.Round(time.Millisecond), strings.Join(names, ", "))
}

// newServer is the basic sample (config/samples) shaped by the server's profile and its
// current desired values.
func (r *run) newServer(s *server) *v1alpha1.DittoServer {
	ds := r.sample.DeepCopy()
	ds.Name, ds.Namespace = s.name, namespace
	ds.Labels = map[string]string{"dittofs-chaos": "true"}
	ds.Spec.Storage.MetadataSize = s.metadataSize
	ds.Spec.Storage.DeleteWithServer = s.deleteData
	ds.Spec.NFSPort = ptr.To(s.nfsPort)
	ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(s.metrics)}
	if s.userSecrets { // otherwise generated <name>-jwt-secret and <name>-admin-credentials
		ds.Spec.Identity = &v1alpha1.IdentitySpec{
			JWT:   &v1alpha1.JWTSpec{SecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: userJWTSecret}, Key: "secret"}},
			Admin: &v1alpha1.AdminSpec{PasswordSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: userAdminSecret}, Key: "password"}},
		}
	}
	if s.percona {
		ds.Spec.Database = nil
		ds.Spec.Percona = &v1alpha1.PerconaSpec{Enabled: true, DeleteWithServer: s.perconaDelete, Replicas: ptr.To[int32](1), StorageSize: "10Gi", DatabaseName: "dittofs"}
	}
	return ds
}

// secs rounds a duration to milliseconds, in seconds.
func secs(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// report is what a run measured; written as JSON to CHAOS_REPORT.
type report struct {
	Seed    int64  `json:"seed"`
	Config  config `json:"config"`
	Started string `json:"started"`
	// Commit of the operator tested (git rev-parse), "+dirty" with local changes.
	Commit  string   `json:"commit"`
	Passed  bool     `json:"passed"`
	Seconds float64  `json:"seconds"`
	Servers []string `json:"servers"`

	BaselineConvergeSeconds float64 `json:"baselineConvergeSeconds"`
	// Kills: SIGKILLs of the single operator at random moments (CHAOS_KILLS); KillsSurvived: those
	// followed by a checkpoint that converged without help; KillsBeforeReady: those that landed
	// before the process served its metrics (start, cache sync).
	Kills             int `json:"kills"`
	KillsSurvived     int `json:"killsSurvived"`
	KillsBeforeReady  int `json:"killsBeforeReady"`
	OperatorProcesses int `json:"operatorProcesses"`
	// Recoveries: convergences after a fault (checkpoints after kills, the API server restart,
	// the pending releases, each leader kill), within the timeout without help or not.
	Recoveries struct {
		Converged int `json:"converged"`
		Failed    int `json:"failed"`
	} `json:"recoveries"`
	UnexpectedExits []string `json:"unexpectedExits"`
	// KillsLeavingPending: kills right after which a release Secret was pending-*;
	// PendingLeftByKills sums those Secrets over the kills.
	PendingLeftByKills  int           `json:"pendingReleaseSecretsAfterKills"`
	KillsLeavingPending int           `json:"killsLeavingPendingReleases"`
	Workload            workloadStats `json:"workload"`
	Checkpoints         []checkpoint  `json:"checkpoints"`

	APIServerRestart struct {
		UnavailableSeconds float64 `json:"unavailableSeconds"`
		ConvergeSeconds    float64 `json:"convergeSecondsAfterRestart"`
		Converged          bool    `json:"converged"`
	} `json:"apiServerRestart"`
	PendingReleases struct {
		Injected        []string `json:"injected"`
		ConvergeSeconds float64  `json:"convergeSecondsAfterRestart"`
		Converged       bool     `json:"converged"`
	} `json:"pendingReleases"`
	Leader struct {
		FirstLeaderSeconds float64   `json:"firstLeaderSeconds"`
		Kills              int       `json:"kills"`
		TakeoverSeconds    []float64 `json:"takeoverSeconds"`
		ConvergeSeconds    []float64 `json:"convergeSecondsAfterKill"`
		Converged          []bool    `json:"converged"`
		Injected           []string  `json:"injected"`
		TwoLeadersSeen     int       `json:"twoLeadersSeen"`
	} `json:"leaderElection"`
	ConvergeAfterLastFaultSeconds float64             `json:"convergeSecondsAfterLastFault"`
	ConvergedAfterLastFault       bool                `json:"convergedAfterLastFault"`
	QuietSeconds                  float64             `json:"quietSeconds"`
	QuietChanges                  []string            `json:"quietChanges"`
	QuietReconciles               float64             `json:"quietReconciles"`
	Violations                    []string            `json:"violations"`
	Failures                      []failure           `json:"failures"`
	RecoveryRestarts              int                 `json:"recoveryRestarts"`
	SetAside                      map[string][]string `json:"setAside"`
	// Ledger counts the objects tracked as data that must survive, by kind.
	Ledger map[string]int `json:"keptObjectsTracked"`
}

// failure is a convergence wait that timed out.
type failure struct {
	Name                string   `json:"name"`
	AfterSeconds        float64  `json:"afterSeconds"`
	Violations          []string `json:"violations"`
	RecoveredByRestart  bool     `json:"recoveredByOperatorRestart"`
	AfterRestartSeconds float64  `json:"afterRestartSeconds"`
	SetAside            []string `json:"setAside,omitempty"`
}

// checkpoint is a convergence check with the workload paused.
type checkpoint struct {
	Name            string  `json:"name"`
	AfterKills      int     `json:"afterKills"`
	ConvergeSeconds float64 `json:"convergeSeconds"`
	Converged       bool    `json:"converged"`
}

func (rep *report) summary() string {
	return fmt.Sprintf("kills survived %d/%d (%d before the operator was ready; %d left pending release Secrets), recoveries %d/%d, API server restart converged in %.1fs, leader takeovers %v s, converged %.1fs after the last fault, %d objects changed in the %.0fs quiet period, set aside %d",
		rep.KillsSurvived, rep.Kills, rep.KillsBeforeReady, rep.KillsLeavingPending, rep.Recoveries.Converged, rep.Recoveries.Converged+rep.Recoveries.Failed,
		rep.APIServerRestart.ConvergeSeconds, rep.Leader.TakeoverSeconds, rep.ConvergeAfterLastFaultSeconds, len(rep.QuietChanges), rep.QuietSeconds, len(rep.SetAside))
}

func (r *run) writeReport(d time.Duration) {
	r.rep.Seconds = secs(d)
	r.rep.Passed = !r.t.Failed()
	r.rep.Servers = nil
	for _, s := range r.servers {
		r.rep.Servers = append(r.rep.Servers, s.String())
	}
	r.rep.Workload = r.workloadStats()
	data, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		r.t.Errorf("report: %v", err)
		return
	}
	if err := os.MkdirAll(filepath.Dir(r.cfg.Report), 0o755); err != nil {
		r.t.Errorf("report: %v", err)
		return
	}
	if err := os.WriteFile(r.cfg.Report, append(data, '\n'), 0o644); err != nil {
		r.t.Errorf("report: %v", err)
		return
	}
	r.logf("report written to %s (operator logs in %s)", r.cfg.Report, r.logDir)
}

// convergeTimeout bounds one wait for convergence.
func (r *run) convergeTimeout() time.Duration {
	return min(r.cfg.Converge, max(r.timeLeft(), time.Second))
}

// mustConverge waits until nothing is left to converge, or fails the test at once.
func (r *run) mustConverge(what string, since time.Time) time.Duration {
	r.t.Helper()
	d, left := r.converge(since, r.convergeTimeout())
	if len(left) > 0 {
		r.rep.Violations = strs(left)
		r.t.Fatalf("%s: not converged after %s; left:\n  %s", what, time.Since(since).Round(time.Second), strings.Join(strs(left), "\n  "))
	}
	return d
}

// settle waits for convergence after a fault (since: when it happened). A failure is
// recorded and fails the test, but the run goes on so that one run yields all its figures: the
// operators are restarted once (a recovery a user would try), and the servers still not
// converged after that are set aside (left out of later convergence waits and of the workload;
// their data is still checked). A violation about data or about the namespace as a whole ends
// the test. ok reports whether it converged without help.
func (r *run) settle(what string, since time.Time) (d time.Duration, ok bool) {
	r.t.Helper()
	d, left := r.converge(since, r.convergeTimeout())
	if len(left) == 0 {
		return d, true
	}
	f := failure{Name: what, AfterSeconds: secs(d), Violations: strs(left)}
	r.t.Errorf("%s: not converged %s after the fault; left:\n  %s", what, d.Round(time.Second), strings.Join(f.Violations, "\n  "))
	restarted := time.Now()
	r.restartOperators()
	d2, left := r.converge(restarted, r.convergeTimeout())
	f.RecoveredByRestart = len(left) == 0
	f.AfterRestartSeconds = secs(d2)
	for _, v := range left {
		if v.server == "" || v.data || r.serverByName(v.server) == nil {
			r.rep.Failures = append(r.rep.Failures, f)
			r.rep.Violations = strs(left)
			r.t.Fatalf("%s: still not converged %s after an operator restart; left:\n  %s", what, d2.Round(time.Second), strings.Join(strs(left), "\n  "))
		}
		if !r.setAside[v.server] {
			r.setAside[v.server] = true
			f.SetAside = append(f.SetAside, v.server)
		}
		r.rep.SetAside[v.server] = append(r.rep.SetAside[v.server], v.msg)
	}
	r.rep.Failures = append(r.rep.Failures, f)
	if f.RecoveredByRestart {
		r.logf("%s: converged %s after an operator restart", what, d2.Round(time.Millisecond))
	} else {
		r.logf("%s: still not converged after an operator restart; set aside: %v", what, f.SetAside)
	}
	return time.Since(since), false
}

// restartOperators SIGKILLs the running operators and starts them again (two replicas in the
// leader-election phase).
func (r *run) restartOperators() {
	r.rep.RecoveryRestarts++
	if r.pair != nil {
		for _, op := range r.pair {
			op.Kill()
		}
		r.pair = []*kwok.Operator{r.startOperator(leaderArgs()...), r.startOperator(leaderArgs()...)}
		for _, op := range r.pair {
			require.NoError(r.t, op.WaitReady(60*time.Second))
		}
		r.op = r.waitLeader(r.pair, 60*time.Second)
		return
	}
	r.op.Kill()
	r.op = r.startOperator()
	require.NoError(r.t, r.op.WaitReady(60*time.Second))
}

// leaderArgs run an operator with leader election out of cluster.
func leaderArgs() []string {
	return []string{"--leader-elect", "--leader-election-namespace=" + namespace}
}

// converge polls the checks every second until they pass or timeout passes; it returns the time
// from since and what was still wrong (the servers set aside excepted, unless their data is
// at stake).
func (r *run) converge(since time.Time, timeout time.Duration) (time.Duration, []violation) {
	deadline := time.Now().Add(timeout)
	var left []violation
	for {
		snap, err := r.snapshot()
		if err == nil {
			r.ledger.observe(r, snap)
			left = left[:0]
			for _, v := range r.violations(snap) {
				if v.data || !r.setAside[v.server] {
					left = append(left, v)
				}
			}
			if len(left) == 0 {
				return time.Since(since), nil
			}
		} else {
			left = []violation{{msg: "reading the cluster: " + err.Error()}}
		}
		if time.Now().After(deadline) {
			return time.Since(since), left
		}
		time.Sleep(time.Second)
	}
}

// randomString is n random bytes, base64-encoded.
func randomString(t *testing.T, n int) string {
	b := make([]byte, n)
	_, err := crand.Read(b)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}
