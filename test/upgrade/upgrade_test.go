// Package upgrade upgrades the operator under running servers on a local kwok cluster (a real
// kube-apiserver, kube-controller-manager with its StatefulSet controller, and simulated nodes
// that report pods ready) and counts what it costs: pod restarts, writes, time to converge.
//
//  1. The operator as of PreviousCommit (built from git history) converges N servers.
//  2. HEAD replaces it (CRD applied first, as docs/UPGRADE.md says). Nothing it renders differs,
//     so no pod may restart and no StatefulSet may be written.
//  3. HEAD with an operator-wide change of every pod template while new pods cannot start (the
//     node cordoned): only --max-concurrent-rollouts servers go down; 4. uncordoned, all roll.
//  5. The same unbounded, for comparison: every server goes down.
//  6. An operator-wide change on a healthy cluster: one restart each, a few at a time.
package upgrade

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/kwok"
)

// PreviousCommit is the operator the upgrade starts from: the last landing before the rollout
// bound existed (override with UPGRADE_FROM=<commit>).
const PreviousCommit = "2b0b064"

const (
	ns      = "upgrade"
	servers = 12
	bound   = 3
)

type fixture struct {
	t      *testing.T
	c      *kwok.Cluster
	k8s    client.Client
	logDir string
	n      int
}

func TestOperatorUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two operators and starts a kwok cluster")
	}
	from := PreviousCommit
	if v := os.Getenv("UPGRADE_FROM"); v != "" {
		from = v
	}
	c := kwok.NewCluster(t, "upgrade")
	f := &fixture{t: t, c: c, logDir: filepath.Join(c.Root, "bin", "upgrade", "logs")}
	require.NoError(t, os.MkdirAll(f.logDir, 0o755))
	previous, prevCRD := buildPrevious(t, c.Root, from)
	head := kwok.BuildManager(t, c.Root)
	c.Up()
	_, f.k8s = c.Client()
	c.InstallCRDs([]string{"dittoservers.dittofs.dittofs.com"}, prevCRD)
	c.MustKubectl("create", "namespace", ns)

	// 1. The previous operator converges the servers.
	op := f.start(previous)
	start := time.Now()
	for i := range servers {
		require.NoError(t, f.k8s.Create(f.ctx(), server(i)))
	}
	f.waitReady(5 * time.Minute)
	t.Logf("%d servers Ready under %s in %s", servers, from, time.Since(start).Round(time.Millisecond))
	require.NoError(t, op.Stop(10*time.Second))
	pods, sts := f.podUIDs(), f.statefulSetVersions()

	// 2. HEAD replaces it; nothing rendered changes.
	c.InstallCRDs([]string{"dittoservers.dittofs.dittofs.com"}, filepath.Join(c.Root, "config", "crd", "bases"))
	op = f.start(head)
	start = time.Now()
	f.waitReady(2 * time.Minute)
	time.Sleep(15 * time.Second) // every server reconciled at least once (the initial list) and settled
	restarts, stsWrites := f.changed(pods, f.podUIDs()), f.changed(sts, f.statefulSetVersions())
	writes := f.writes(op)
	t.Logf("UPGRADE %s -> HEAD, nothing rendered changes: %d pod restarts, %d StatefulSets written, %d operator writes (%s), Ready after %s",
		from, len(restarts), len(stsWrites), writes.total, writes.detail, time.Since(start).Round(time.Millisecond))
	assert.Empty(t, restarts, "no pod restarts")
	assert.Empty(t, stsWrites, "no StatefulSet written")
	require.NoError(t, op.Stop(10*time.Second))

	// 3. An operator-wide change of every pod template (override values) while new pods cannot
	//    start (the node is cordoned, as when a new image does not pull or a node pool is full):
	//    with the bound only its servers go down, the others keep running and say why.
	f.cordon("cordon")
	pods = f.podUIDs()
	op = f.start(head, fmt.Sprintf("--max-concurrent-rollouts=%d", bound), "--override-values-file="+f.overrides("logging.level: DEBUG"))
	time.Sleep(20 * time.Second)
	down, queued := f.census()
	t.Logf("UPGRADE operator-wide change while new pods cannot start, --max-concurrent-rollouts=%d: after 20 s %d servers down (new pod Pending), %d waiting on their running pod", bound, len(down), len(queued))
	assert.Len(t, down, bound, "the bound's servers took the new template")
	assert.Len(t, queued, servers-bound, "the others wait, running")

	// 4. Pods can start again: the rollout completes, one restart per server.
	f.cordon("uncordon")
	_, took := f.watchRollout("DEBUG", 5*time.Minute)
	restarts = f.changed(pods, f.podUIDs())
	t.Logf("UPGRADE node uncordoned: all %d servers rolled and Ready %s later, %d pod restarts", servers, took.Round(time.Millisecond), len(restarts))
	assert.Len(t, restarts, servers)
	require.NoError(t, op.Stop(10*time.Second))

	// 5. The same situation unbounded, for comparison: every server goes down.
	f.cordon("cordon")
	op = f.start(head, "--max-concurrent-rollouts=0", "--override-values-file="+f.overrides("logging.level: WARN"))
	time.Sleep(20 * time.Second)
	down, _ = f.census()
	t.Logf("UPGRADE the same, --max-concurrent-rollouts=0: after 20 s %d of %d servers down", len(down), servers)
	assert.Greater(t, len(down), bound, "without the bound more servers go down (the comparison is meaningful)")
	f.cordon("uncordon")
	f.waitReady(3 * time.Minute)
	require.NoError(t, op.Stop(10*time.Second))

	// 6. An operator-wide change on a healthy cluster: every server restarts once, a few at a time.
	pods = f.podUIDs()
	op = f.start(head, fmt.Sprintf("--max-concurrent-rollouts=%d", bound), "--override-values-file="+f.overrides("logging.level: ERROR"))
	peak, took := f.watchRollout("ERROR", 5*time.Minute)
	restarts = f.changed(pods, f.podUIDs())
	writes = f.writes(op)
	t.Logf("UPGRADE operator-wide change, --max-concurrent-rollouts=%d: %d pod restarts (%d servers), at most %d rolling at once, all rolled and Ready in %s, %d operator writes (%s)",
		bound, len(restarts), servers, peak, took.Round(time.Millisecond), writes.total, writes.detail)
	assert.Len(t, restarts, servers, "one restart per server")
	assert.LessOrEqual(t, peak, bound)
}

// cordon runs kubectl cordon or uncordon on every node.
func (f *fixture) cordon(verb string) {
	f.t.Helper()
	for _, node := range strings.Fields(f.c.MustKubectl("get", "nodes", "-o", "name")) {
		f.c.MustKubectl(verb, node)
	}
}

// census lists the servers whose pod is not running (down) and those waiting for a rollout slot
// (Progressing=True RolloutQueued, pod Ready).
func (f *fixture) census() (down, queued []string) {
	for _, ds := range f.list() {
		for _, c := range ds.Status.Conditions {
			if c.Type == specs.ConditionProgressing && c.Reason == specs.ReasonRolloutQueued {
				queued = append(queued, ds.Name)
			}
		}
		pod := &corev1.Pod{}
		err := f.k8s.Get(f.ctx(), client.ObjectKey{Namespace: ns, Name: ds.Name + "-0"}, pod)
		if err != nil || pod.Status.Phase != corev1.PodRunning {
			down = append(down, ds.Name)
		}
	}
	return down, queued
}

// buildPrevious builds the operator at commit from git history (cached in bin/upgrade) and
// returns it with its CRD directory.
func buildPrevious(t *testing.T, root, commit string) (string, string) {
	t.Helper()
	dir := filepath.Join(root, "bin", "upgrade", "src-"+commit)
	bin := filepath.Join(root, "bin", "upgrade", "manager-"+commit)
	crd := filepath.Join(dir, "config", "crd", "bases")
	if _, err := os.Stat(bin); err == nil {
		return bin, crd
	}
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", root, commit, dir))
	out, err := archive.CombinedOutput()
	require.NoError(t, err, "extracting %s from git history (a full clone is needed): %s", commit, out)
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.buildCommit="+commit, "-o", bin+".tmp", ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	out, err = build.CombinedOutput()
	require.NoError(t, err, "building the operator at %s: %s", commit, out)
	require.NoError(t, os.Rename(bin+".tmp", bin))
	return bin, crd
}

func server(i int) *v1alpha1.DittoServer {
	return &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("files-%02d", i), Namespace: ns},
		Spec: v1alpha1.DittoServerSpec{
			Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"},
			Metrics: &v1alpha1.MetricsSpec{Enabled: ptr.To(true)},
		},
	}
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

func (f *fixture) start(manager string, args ...string) *kwok.Operator {
	f.t.Helper()
	f.n++
	op, err := kwok.StartOperator(kwok.OperatorOptions{
		Manager: manager, Kubeconfig: f.c.Kubeconfig, Log: filepath.Join(f.logDir, fmt.Sprintf("manager-%d.log", f.n)),
		Args: append([]string{"--manage-control-plane=false"}, args...),
	})
	require.NoError(f.t, err)
	f.t.Cleanup(func() { _ = op.Stop(10 * time.Second) })
	require.NoError(f.t, op.WaitReady(60*time.Second))
	return op
}

// overrides writes an operator-wide override values file (one "key: value" line).
func (f *fixture) overrides(line string) string {
	p := filepath.Join(f.t.TempDir(), "overrides.yaml")
	require.NoError(f.t, os.WriteFile(p, []byte(line+"\n"), 0o644))
	return p
}

func (f *fixture) list() []v1alpha1.DittoServer {
	l := &v1alpha1.DittoServerList{}
	require.NoError(f.t, f.k8s.List(f.ctx(), l, client.InNamespace(ns)))
	return l.Items
}

func ready(ds *v1alpha1.DittoServer) bool {
	for _, c := range ds.Status.Conditions {
		if c.Type == specs.ConditionReady {
			return c.Status == metav1.ConditionTrue && ds.Status.ObservedGeneration == ds.Generation
		}
	}
	return false
}

func (f *fixture) waitReady(limit time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n := 0
		for _, ds := range f.list() {
			if ready(&ds) {
				n++
			}
		}
		if n == servers {
			return
		}
		require.True(f.t, time.Now().Before(deadline), "%d/%d servers Ready after %s", n, servers, limit)
		time.Sleep(500 * time.Millisecond)
	}
}

// watchRollout samples the StatefulSets until every one runs a config with logging.level and is
// rolled out and Ready; it returns the most rolling at once and the time it took.
func (f *fixture) watchRollout(level string, limit time.Duration) (int, time.Duration) {
	f.t.Helper()
	start := time.Now()
	peak := 0
	for {
		l := &appsv1.StatefulSetList{}
		require.NoError(f.t, f.k8s.List(f.ctx(), l, client.InNamespace(ns)))
		rolling, done := 0, 0
		for i := range l.Items {
			s := &l.Items[i]
			st := s.Status
			moving := st.ObservedGeneration < s.Generation || st.UpdateRevision != st.CurrentRevision || st.ReadyReplicas < 1 || st.UpdatedReplicas < 1
			if moving {
				rolling++
			} else if f.runs(s, level) {
				done++
			}
		}
		peak = max(peak, rolling)
		if done == servers {
			return peak, time.Since(start)
		}
		require.True(f.t, time.Since(start) < limit, "%d/%d rolled after %s", done, servers, limit)
		time.Sleep(200 * time.Millisecond)
	}
}

// runs reports whether the StatefulSet's pod template is the one for logging.level level (its
// ConfigMap says so and the template's hash was computed after it).
func (f *fixture) runs(s *appsv1.StatefulSet, level string) bool {
	cm := &corev1.ConfigMap{}
	if err := f.k8s.Get(f.ctx(), client.ObjectKey{Namespace: ns, Name: s.Name + "-config"}, cm); err != nil {
		return false
	}
	ds := &v1alpha1.DittoServer{}
	if err := f.k8s.Get(f.ctx(), client.ObjectKey{Namespace: ns, Name: s.Name}, ds); err != nil {
		return false
	}
	return strings.Contains(cm.Data["config.yaml"], "level: "+level) && ds.Status.ConfigHash == s.Spec.Template.Annotations[specs.AnnotationConfigHash] && ready(ds)
}

func (f *fixture) podUIDs() map[string]string {
	l := &corev1.PodList{}
	require.NoError(f.t, f.k8s.List(f.ctx(), l, client.InNamespace(ns)))
	out := map[string]string{}
	for _, p := range l.Items {
		out[p.Name] = string(p.UID)
	}
	return out
}

func (f *fixture) statefulSetVersions() map[string]string {
	l := &appsv1.StatefulSetList{}
	require.NoError(f.t, f.k8s.List(f.ctx(), l, client.InNamespace(ns)))
	out := map[string]string{}
	for _, s := range l.Items {
		out[s.Name] = fmt.Sprint(s.Generation)
	}
	return out
}

func (f *fixture) changed(before, after map[string]string) []string {
	var out []string
	for k, v := range before {
		if after[k] != v {
			out = append(out, k)
		}
	}
	return out
}

type writeCount struct {
	total  int
	detail string
}

// writes are the operator's write requests so far, by verb.
func (f *fixture) writes(op *kwok.Operator) writeCount {
	m, err := op.Metrics()
	require.NoError(f.t, err)
	var w writeCount
	var parts []string
	for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		n := int(kwok.Sum(m, "rest_client_requests_total", map[string]string{"method": verb}))
		w.total += n
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", verb, n))
		}
	}
	w.detail = strings.Join(parts, ", ")
	if w.detail == "" {
		w.detail = "none"
	}
	return w
}
