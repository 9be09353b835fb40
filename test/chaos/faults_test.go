package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/test/kwok"
)

// chaos runs the workload while the operator is SIGKILLed CHAOS_KILLS times at random moments
// and started again; halfway, the API server is restarted mid-reconcile. Convergence is checked
// after the API server restart, every CHAOS_CHECK_EVERY kills and at the end.
func (r *run) chaos() {
	defer r.phase(fmt.Sprintf("chaos: %d SIGKILLs of the operator under a workload", r.cfg.Kills))()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go r.workload(rand.New(rand.NewSource(r.cfg.Seed+1)), stop, &wg)
	go r.observe(stop, &wg)
	stopWorkload := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWorkload()

	apiAt, apiDone := r.cfg.Kills/2, false
	for r.rep.Kills < r.cfg.Kills {
		if r.timeLeft() < r.cfg.Converge {
			r.t.Fatalf("out of time after %d of %d kills (raise go test -timeout)", r.rep.Kills, r.cfg.Kills)
		}
		if !apiDone && r.rep.Kills >= apiAt {
			r.apiServerRestart()
			apiDone = true
		}
		r.killOnce()
		if r.cfg.CheckEvery > 0 && r.rep.Kills%r.cfg.CheckEvery == 0 && r.rep.Kills < r.cfg.Kills {
			r.checkpoint(fmt.Sprintf("after %d kills", r.rep.Kills))
		}
	}
	if !apiDone {
		r.apiServerRestart()
	}
	stopWorkload()
	r.checkpoint("after the last kill")
}

// observe feeds the ledger every second until stop (objects seen only between two checks are
// tracked too).
func (r *run) observe(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Second):
		}
		if snap, err := r.snapshot(); err == nil {
			r.ledger.observe(r, snap)
		}
	}
}

// aliveTime is how long the operator runs before the next kill: a quarter of the kills land in
// its first 800 ms (start, cache sync, the first reconciles), half within 4 s, the rest within
// 10 s.
func (r *run) aliveTime() time.Duration {
	switch p := r.rng.Intn(4); p {
	case 0:
		return time.Duration(r.rng.Intn(800)) * time.Millisecond
	case 3:
		return time.Duration(4000+r.rng.Intn(6000)) * time.Millisecond
	default:
		return time.Duration(800+r.rng.Intn(3200)) * time.Millisecond
	}
}

// killOnce lets the operator run for a random time, SIGKILLs it, counts the release Secrets it
// left pending, waits a random time (the workload goes on) and starts a new one.
func (r *run) killOnce() {
	alive := r.aliveTime()
	down := time.Duration(r.rng.Intn(1000)) * time.Millisecond
	for deadline := r.op.Started.Add(alive); time.Now().Before(deadline); {
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
		r.checkAlive()
	}
	_, notReady := r.op.Requests()
	if !r.op.Kill() {
		r.checkAlive()
		return
	}
	r.rep.Kills++
	if notReady != nil {
		r.rep.KillsBeforeReady++
	}
	if n, err := r.pendingReleaseSecrets(); err == nil && n > 0 {
		r.rep.PendingLeftByKills += n
		r.rep.KillsLeavingPending++
		r.logf("kill %d (pid %d, after %s): %d release Secrets left pending", r.rep.Kills, r.op.PID, alive.Round(time.Millisecond), n)
	}
	time.Sleep(down)
	r.op = r.startOperator()
}

// checkAlive restarts the single operator if it exited by itself (recorded: it should not).
func (r *run) checkAlive() {
	exited, err := r.op.Exited()
	if !exited {
		return
	}
	msg := fmt.Sprintf("pid %d exited by itself after %s: %v; log tail:\n%s", r.op.PID, time.Since(r.op.Started).Round(time.Millisecond), err, r.op.LogTail(20))
	r.rep.UnexpectedExits = append(r.rep.UnexpectedExits, msg)
	r.t.Errorf("operator %s", msg)
	r.op = r.startOperator()
}

// checkpoint pauses the workload and waits until everything converges.
func (r *run) checkpoint(name string) {
	r.gate.Lock()
	defer r.gate.Unlock()
	r.resync()
	r.checkAlive()
	d, ok := r.settle(name, time.Now())
	r.passed(name, d, ok)
	r.recovery(ok)
	r.logf("checkpoint %q: converged=%v in %s after the pause (%d kills so far)", name, ok, d.Round(time.Millisecond), r.rep.Kills)
}

// recovery counts a convergence after a fault: within the timeout without help, or not.
func (r *run) recovery(ok bool) {
	if ok {
		r.rep.Recoveries.Converged++
	} else {
		r.rep.Recoveries.Failed++
	}
}

// passed records a checkpoint; the kills since the previous one survived if it converged
// without help.
func (r *run) passed(name string, d time.Duration, ok bool) {
	r.rep.Checkpoints = append(r.rep.Checkpoints, checkpoint{Name: name, AfterKills: r.rep.Kills, ConvergeSeconds: secs(d), Converged: ok})
	if ok {
		r.rep.KillsSurvived += r.rep.Kills - r.checkedKills
	}
	r.checkedKills = r.rep.Kills
}

// apiServerRestart gives the operator work (a new NFS port for every server), lets it start,
// then SIGKILLs kube-apiserver, starts it again and waits for convergence.
func (r *run) apiServerRestart() {
	defer r.phase("API server restart mid-reconcile")()
	r.gate.Lock()
	defer r.gate.Unlock()
	r.resync()
	r.checkAlive()
	require.NoError(r.t, r.op.WaitReady(60*time.Second))
	changed := r.burst(false)
	delay := time.Duration(100+r.rng.Intn(500)) * time.Millisecond
	time.Sleep(delay)
	killed := time.Now()
	unavailable, err := r.c.RestartAPIServer(90 * time.Second)
	require.NoError(r.t, err)
	r.logf("kube-apiserver SIGKILLed %s after %d spec changes, serving again after %s", delay, changed, unavailable.Round(time.Millisecond))
	r.rep.APIServerRestart.UnavailableSeconds = secs(unavailable)
	r.checkAlive()
	d, ok := r.settle("after the API server restart", killed)
	r.rep.APIServerRestart.ConvergeSeconds = secs(d)
	r.rep.APIServerRestart.Converged = ok
	r.passed("after the API server restart", d, ok)
	r.recovery(ok)
	r.logf("converged=%v %s after the API server was killed", ok, d.Round(time.Millisecond))
}

// burst changes every existing server's NFS port (work for the operator to be in the middle
// of); with deletes, it also deletes one server with and one without deleteWithServer and
// re-creates the absent ones. It returns how many servers it changed. The workload is paused.
func (r *run) burst(deletes bool) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	deletedKeep, deletedOptIn := false, false
	for _, s := range r.servers {
		switch {
		case r.setAside[s.name]:
		case !s.wantExists:
			if deletes {
				r.create(ctx, s)
				n++
			}
		case deletes && s.deleteData && !deletedOptIn:
			r.deleteServer(ctx, s)
			deletedOptIn = true
			n++
		case deletes && !s.deleteData && !s.percona && !deletedKeep:
			r.deleteServer(ctx, s)
			deletedKeep = true
			n++
		default:
			r.newPort(s)
			n++
		}
	}
	return n
}

// pendingReleases: with the operator down, release Secrets are left as a killed operator
// leaves them, and the user changes the servers meanwhile: a pending-install (in place, on a
// new server's first revision), a pending-upgrade (as a new revision, the latest staying
// deployed) and a pending-rollback (in place); each of the three servers gets a new NFS port.
// The next operator must recover all three and converge to the new specs.
func (r *run) pendingReleases() {
	defer r.phase("pending-* release Secrets")()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// every server present again (they adopt their kept data), and one new server
	for _, s := range r.servers {
		if !s.wantExists && !r.setAside[s.name] {
			r.create(ctx, s)
		}
	}
	ps := &server{name: "chaos-pending", nfsPort: 12049, metadataSize: "10Gi"}
	r.servers = append(r.servers, ps)
	require.NoError(r.t, r.k8s.Create(ctx, r.newServer(ps)))
	ps.wantExists, ps.creates = true, 1
	cancel()
	r.checkAlive()
	r.settle("all servers present again", time.Now())

	var upgrade, rollback *server
	for _, s := range r.servers {
		switch {
		case s == ps || !s.wantExists || r.setAside[s.name]:
		case upgrade == nil:
			upgrade = s
		case rollback == nil:
			rollback = s
		}
	}
	require.NotNil(r.t, rollback, "two servers for the pending upgrade and rollback")
	require.True(r.t, r.op.Kill(), "the operator was running")
	r.logf("operator (pid %d) SIGKILLed", r.op.PID)
	for _, p := range []struct {
		s      *server
		status string
		newRev bool
	}{{ps, "pending-install", false}, {upgrade, "pending-upgrade", true}, {rollback, "pending-rollback", false}} {
		name, err := r.leavePending(p.s.name, p.status, p.newRev)
		require.NoError(r.t, err, "%s %s", p.s.name, p.status)
		r.rep.PendingReleases.Injected = append(r.rep.PendingReleases.Injected, name+" "+p.status)
		r.newPort(p.s)
	}
	n, err := r.pendingReleaseSecrets()
	require.NoError(r.t, err)
	require.GreaterOrEqual(r.t, n, 3, "pending release Secrets before the restart")
	r.logf("left pending: %s; their nfsPort changed", strings.Join(r.rep.PendingReleases.Injected, ", "))

	r.op = r.startOperator()
	d, ok := r.settle("pending releases recovered", r.op.Started)
	r.rep.PendingReleases.ConvergeSeconds = secs(d)
	r.rep.PendingReleases.Converged = ok
	r.recovery(ok)
	r.logf("pending releases: converged=%v %s after the operator started", ok, d.Round(time.Millisecond))
}

// newPort moves a server to the next NFS port.
func (r *run) newPort(s *server) {
	ctx, cancel := r.ctx()
	defer cancel()
	port := s.nfsPort + 1
	if port > 12060 {
		port = 12049
	}
	r.update(ctx, s, func(ds *v1alpha1.DittoServer) { ds.Spec.NFSPort = ptr.To(port) }, func() { s.nfsPort = port })
}

// leaderElection runs two replicas with leader election; the leader is SIGKILLed (in the
// middle of a burst of changes, deletions included) CHAOS_LEADER_KILLS times, and started again
// as a follower each time. While the lease has no live holder, one more server's release is
// left pending-upgrade as the killed leader would leave it (after the follower started), and
// its spec changed. The pair stays for the final phase.
func (r *run) leaderElection() {
	defer r.phase(fmt.Sprintf("leader election: %d leader kills", r.cfg.LeaderKills))()
	if err := r.op.Stop(15 * time.Second); err != nil {
		r.logf("single operator (pid %d) stopped: %v", r.op.PID, err)
	}
	r.pair = []*kwok.Operator{r.startOperator(leaderArgs()...), r.startOperator(leaderArgs()...)}
	for _, op := range r.pair {
		require.NoError(r.t, op.WaitReady(60*time.Second))
	}
	r.op = r.waitLeader(r.pair, 60*time.Second)
	r.rep.Leader.FirstLeaderSeconds = secs(time.Since(r.pair[0].Started))
	r.logf("leader: pid %d, %s after the start", r.op.PID, time.Since(r.pair[0].Started).Round(time.Millisecond))
	r.lastFault = time.Now()
	for k := 0; k < r.cfg.LeaderKills; k++ {
		if r.timeLeft() < r.cfg.Converge {
			r.t.Fatalf("out of time after %d of %d leader kills", k, r.cfg.LeaderKills)
		}
		r.settle("before the leader kill", time.Now())
		leader := r.op
		n := r.burst(true)
		time.Sleep(time.Duration(100+r.rng.Intn(500)) * time.Millisecond)
		killed := time.Now()
		require.True(r.t, leader.Kill(), "the leader was running")
		r.rep.Leader.Kills++
		r.lastFault = killed
		var follower *kwok.Operator
		for _, op := range r.pair {
			if op != leader {
				follower = op
			}
		}
		if s := r.pickServer(); s != nil {
			name, err := r.leavePending(s.name, "pending-upgrade", true)
			require.NoError(r.t, err)
			r.newPort(s)
			r.rep.Leader.Injected = append(r.rep.Leader.Injected, name+" pending-upgrade")
		}
		next := r.waitLeader([]*kwok.Operator{follower}, 60*time.Second)
		takeover := time.Since(killed)
		r.rep.Leader.TakeoverSeconds = append(r.rep.Leader.TakeoverSeconds, secs(takeover))
		restarted := r.startOperator(leaderArgs()...)
		require.NoError(r.t, restarted.WaitReady(60*time.Second))
		r.pair = []*kwok.Operator{next, restarted}
		r.op = next
		r.logf("leader (pid %d) SIGKILLed after %d changes: pid %d leads %s later", leader.PID, n, next.PID, takeover.Round(time.Millisecond))
		d, ok := r.settle(fmt.Sprintf("after leader kill %d", k+1), killed)
		r.rep.Leader.ConvergeSeconds = append(r.rep.Leader.ConvergeSeconds, secs(d))
		r.rep.Leader.Converged = append(r.rep.Leader.Converged, ok)
		r.recovery(ok)
		r.logf("converged=%v %s after the leader kill", ok, d.Round(time.Millisecond))
		if again := r.waitLeader(r.pair, 5*time.Second); again != r.op {
			r.t.Errorf("the lease moved again after the takeover (pid %d leads)", again.PID)
			r.op = again
		}
	}
}

// pickServer is a random server that exists, has a deployed release and is not set aside.
func (r *run) pickServer() *server {
	var cands []*server
	for _, s := range r.servers {
		if s.wantExists && !r.setAside[s.name] {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return cands[r.rng.Intn(len(cands))]
}

// waitLeader polls the operators' leader_election_master_status until exactly one leads; two
// at once is counted (and fails the test).
func (r *run) waitLeader(ops []*kwok.Operator, timeout time.Duration) *kwok.Operator {
	var leader *kwok.Operator
	_, err := kwok.Poll(timeout, 200*time.Millisecond, func() (bool, string) {
		var leaders []*kwok.Operator
		for _, op := range r.liveOperators() {
			if ok, _ := op.IsLeader(leaseName); ok {
				leaders = append(leaders, op)
			}
		}
		if len(leaders) > 1 {
			r.rep.Leader.TwoLeadersSeen++
			r.t.Errorf("two leaders at once: pids %d and %d", leaders[0].PID, leaders[1].PID)
		}
		for _, l := range leaders {
			for _, op := range ops {
				if l == op {
					leader = l
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d leaders", len(leaders))
	})
	require.NoError(r.t, err, "no leader after %s", timeout)
	return leader
}

func (r *run) liveOperators() []*kwok.Operator {
	r.opMu.Lock()
	defer r.opMu.Unlock()
	var out []*kwok.Operator
	for _, op := range r.ops {
		if exited, _ := op.Exited(); !exited {
			out = append(out, op)
		}
	}
	return out
}

// final waits for convergence after the last fault, then watches for a quiet period: no object
// of the namespace may change (no status write, no flapping), and checks everything once more.
func (r *run) final() {
	defer r.phase("final convergence and quiet period")()
	d, ok := r.settle("final", r.lastFault)
	r.rep.ConvergeAfterLastFaultSeconds = secs(d)
	r.rep.ConvergedAfterLastFault = ok
	r.passed("final", d, ok)
	r.logf("converged=%v %s after the last fault", ok, d.Round(time.Millisecond))

	before, err := r.versions()
	require.NoError(r.t, err)
	rec0 := r.reconciles()
	time.Sleep(r.cfg.Quiet)
	after, err := r.versions()
	require.NoError(r.t, err)
	r.rep.QuietSeconds = secs(r.cfg.Quiet)
	r.rep.QuietReconciles = r.reconciles() - rec0
	var changes []string
	for k, v := range after {
		if before[k] != v {
			changes = append(changes, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changes = append(changes, k+" (deleted)")
		}
	}
	sort.Strings(changes)
	r.rep.QuietChanges = changes
	var flapping []string
	for _, c := range changes {
		if !r.setAside[r.ownerOf(c)] {
			flapping = append(flapping, c)
		}
	}
	assert.Empty(r.t, flapping, "objects written during the %s quiet period after convergence", r.cfg.Quiet)
	for _, op := range r.pair {
		exited, err := op.Exited()
		assert.False(r.t, exited, "operator pid %d exited: %v", op.PID, err)
	}
	snap, err := r.snapshot()
	require.NoError(r.t, err)
	r.ledger.observe(r, snap)
	var left []violation
	for _, v := range r.violations(snap) {
		if v.data || !r.setAside[v.server] {
			left = append(left, v)
		}
	}
	r.rep.Violations = strs(left)
	assert.Empty(r.t, strs(left), "after the quiet period")
	r.rep.Ledger = r.ledger.counts()
	r.logf("quiet for %s: %d objects changed (%d outside the servers set aside), %.0f reconciles; kept data tracked: %v",
		r.cfg.Quiet, len(changes), len(flapping), r.rep.QuietReconciles, r.rep.Ledger)
	if len(r.setAside) > 0 {
		r.t.Errorf("servers that never converged (set aside): %v", keys(r.setAside))
	}
}

// ownerOf is the server a "Kind/name" object belongs to by its name (<server>, <server>-...,
// <server>.<hash> for events, sh.helm.release.v1.<server>.v<n>), or "".
func (r *run) ownerOf(key string) string {
	_, name, _ := strings.Cut(key, "/")
	name = strings.TrimPrefix(name, releaseSecretPrefix)
	best := ""
	for _, s := range r.servers {
		if (name == s.name || strings.HasPrefix(name, s.name+"-") || strings.HasPrefix(name, s.name+".")) && len(s.name) > len(best) {
			best = s.name
		}
	}
	return best
}

// versions maps every object of the namespace the operator or the Kubernetes controllers
// write for the servers (the leader-election Lease aside) to its resourceVersion.
func (r *run) versions() (map[string]string, error) {
	snap, err := r.snapshot()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	addAll := func(kind string, objs []client.Object) {
		for _, o := range objs {
			out[kind+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	addAll("DittoServer", objects(snap.servers))
	addAll("StatefulSet", ptrs(snap.sts))
	addAll("Service", ptrs(snap.svcs))
	addAll("ConfigMap", ptrs(snap.cms))
	addAll("PersistentVolumeClaim", ptrs(snap.pvcs))
	addAll("Pod", ptrs(snap.pods))
	addAll("Secret", ptrs(snap.secrets))
	addAll("PerconaPGCluster", ptrs(snap.percona))
	// The operator's events are about DittoServers; the scheduler's and kubelet's (kwok's) are
	// about pods, and their writes are asynchronous: a FailedScheduling counted up before the
	// pod was bound can land after convergence. The pods themselves are compared above.
	var ours []corev1.Event
	for _, ev := range snap.events {
		if ev.InvolvedObject.Kind == "DittoServer" {
			ours = append(ours, ev)
		}
	}
	addAll("Event", ptrs(ours))
	return out, nil
}

func objects(m map[string]*v1alpha1.DittoServer) []client.Object {
	var out []client.Object
	for _, ds := range m {
		out = append(out, ds)
	}
	return out
}

func ptrs[T any, P interface {
	*T
	client.Object
}](items []T) []client.Object {
	out := make([]client.Object, 0, len(items))
	for i := range items {
		out = append(out, P(&items[i]))
	}
	return out
}

// reconciles sums controller_runtime_reconcile_total over the live operators.
func (r *run) reconciles() float64 {
	total := 0.0
	for _, op := range r.liveOperators() {
		if m, err := op.Metrics(); err == nil {
			total += kwok.Sum(m, "controller_runtime_reconcile_total", nil)
		}
	}
	return total
}
