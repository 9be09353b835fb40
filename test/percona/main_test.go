// Package percona runs the operator against a real kube-apiserver (envtest) with the real
// PerconaPGCluster CRD of percona-postgresql-operator v2.9.0 installed. The tests play the
// Percona operator: they set status.state and create the user Secret.
package percona

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

var (
	env *testenv.Env
	k8s client.Client
	nsN atomic.Int32
	// crdDir holds the PerconaPGCluster CRD extracted from the module's deploy/crd.yaml.
	crdDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	crdDir, err = extractPerconaCRD()
	if err != nil {
		fmt.Fprintln(os.Stderr, "extracting the Percona CRD:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(crdDir) }()
	start := time.Now()
	env, err = testenv.Start(crdDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	defer env.Stop()
	fmt.Printf("envtest with the Percona CRD started in %s\n", time.Since(start).Round(time.Millisecond))
	k8s = env.Client
	return m.Run()
}

// extractPerconaCRD copies the perconapgclusters CRD out of the module's deploy/crd.yaml (4.8 MB,
// eight CRDs) into a temporary directory: the other CRDs are not needed and slow envtest down.
func extractPerconaCRD() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/percona/percona-postgresql-operator/v2").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m percona-postgresql-operator/v2: %w", err)
	}
	all, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "deploy", "crd.yaml"))
	if err != nil {
		return "", err
	}
	for _, doc := range strings.Split(string(all), "\n---\n") {
		if !strings.Contains(doc, "\n  name: "+hybrid.PerconaCRDName+"\n") {
			continue
		}
		dir, err := os.MkdirTemp("", "percona-crd-")
		if err != nil {
			return "", err
		}
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---\n")
		return dir, os.WriteFile(filepath.Join(dir, hybrid.PerconaCRDName+".yaml"), []byte(doc), 0o600)
	}
	return "", fmt.Errorf("no %s in deploy/crd.yaml", hybrid.PerconaCRDName)
}

const (
	timeout = 20 * time.Second
	tick    = 50 * time.Millisecond
)

func ctx() context.Context { return context.Background() }

func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	name := fmt.Sprintf("pg%d-%d", nsN.Add(1), time.Now().UnixNano()%100000)
	require.NoError(t, c.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// perconaServer is a server with Percona enabled (JWT and admin Secrets generated).
func perconaServer(ns, name string, mutate func(*v1alpha1.PerconaSpec)) *v1alpha1.DittoServer {
	p := &v1alpha1.PerconaSpec{Enabled: true}
	if mutate != nil {
		mutate(p)
	}
	return &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}, Percona: p},
	}
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(tick)
	}
	t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
}

func getServer(t *testing.T, c client.Client, ns, name string) *v1alpha1.DittoServer {
	t.Helper()
	ds := &v1alpha1.DittoServer{}
	require.NoError(t, c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, ds))
	return ds
}

func condition(ds *v1alpha1.DittoServer, t string) *metav1.Condition {
	return meta.FindStatusCondition(ds.Status.Conditions, t)
}

// waitCondition waits until the condition has the status (and reason, when given) and its
// message contains every string in contains.
func waitCondition(t *testing.T, c client.Client, ns, name, condType string, status metav1.ConditionStatus, reason string, contains ...string) *v1alpha1.DittoServer {
	t.Helper()
	var ds *v1alpha1.DittoServer
	eventually(t, fmt.Sprintf("%s=%s (%s) %v", condType, status, reason, contains), func() error {
		ds = &v1alpha1.DittoServer{}
		if err := c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, ds); err != nil {
			return err
		}
		cond := condition(ds, condType)
		if cond == nil {
			return fmt.Errorf("no %s condition; conditions: %v", condType, ds.Status.Conditions)
		}
		if cond.Status != status || (reason != "" && cond.Reason != reason) {
			return fmt.Errorf("%s is %s/%s: %s", condType, cond.Status, cond.Reason, cond.Message)
		}
		for _, s := range contains {
			if !strings.Contains(cond.Message, s) {
				return fmt.Errorf("%s message %q lacks %q", condType, cond.Message, s)
			}
		}
		return nil
	})
	return ds
}

// getCluster waits for the server's PerconaPGCluster.
func getCluster(t *testing.T, c client.Client, ns, server string) *pgv2.PerconaPGCluster {
	t.Helper()
	pg := &pgv2.PerconaPGCluster{}
	eventually(t, "PerconaPGCluster "+server+"-postgres", func() error {
		return c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: server + "-postgres"}, pg)
	})
	return pg
}

// setPerconaState plays the Percona operator: it writes status.state.
func setPerconaState(t *testing.T, ns, server, state string) {
	t.Helper()
	pg := &pgv2.PerconaPGCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: server + "-postgres"}}
	patch := []byte(fmt.Sprintf(`{"status":{"state":%q}}`, state))
	require.NoError(t, k8s.Status().Patch(ctx(), pg, client.RawPatch(types.MergePatchType, patch)))
}

// perconaUserSecret plays the Percona operator: it creates (or rewrites) the user Secret.
func perconaUserSecret(t *testing.T, ns, server, password string) {
	t.Helper()
	cluster := server + "-postgres"
	host := fmt.Sprintf("%s-primary.%s.svc", cluster, ns)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: cluster + "-pguser-dittofs", Namespace: ns}}
	data := map[string][]byte{
		"host": []byte(host), "port": []byte("5432"), "dbname": []byte("dittofs"), "user": []byte("dittofs"),
		"password": []byte(password),
		"uri":      []byte(fmt.Sprintf("postgresql://dittofs:%s@%s:5432/dittofs", password, host)),
	}
	err := k8s.Get(ctx(), client.ObjectKeyFromObject(s), s)
	if err == nil {
		s.Data = data
		require.NoError(t, k8s.Update(ctx(), s))
		return
	}
	s.Data = data
	require.NoError(t, k8s.Create(ctx(), s))
}

func getStatefulSet(t *testing.T, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	eventually(t, "StatefulSet "+name, func() error {
		return k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, sts)
	})
	return sts
}

// markStatefulSetReady plays the StatefulSet controller (envtest has none).
func markStatefulSetReady(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, "StatefulSet status update", func() error {
		sts := &appsv1.StatefulSet{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, sts); err != nil {
			return err
		}
		want := *sts.Spec.Replicas
		sts.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: sts.Generation, Replicas: want, ReadyReplicas: want, AvailableReplicas: want,
			CurrentReplicas: want, UpdatedReplicas: want, CurrentRevision: "r1", UpdateRevision: "r1",
		}
		return k8s.Status().Update(ctx(), sts)
	})
}

// events lists the messages of a DittoServer's events of one reason.
func events(t *testing.T, c client.Client, ns, name, reason string) []string {
	t.Helper()
	list := &corev1.EventList{}
	require.NoError(t, c.List(ctx(), list, client.InNamespace(ns)))
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// waitEvent waits for an event of the reason whose message contains substr.
func waitEvent(t *testing.T, c client.Client, ns, name, reason, substr string) {
	t.Helper()
	eventually(t, "event "+reason, func() error {
		for _, m := range events(t, c, ns, name, reason) {
			if strings.Contains(m, substr) {
				return nil
			}
		}
		return fmt.Errorf("no %s event containing %q; have %v", reason, substr, events(t, c, ns, name, reason))
	})
}

// reconcileCount reads controller-runtime's reconcile counter of the Go controller.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "dittoserver-go" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// ownerUIDs lists the UIDs the object's owner references point at.
func ownerUIDs(o metav1.Object) []types.UID {
	var out []types.UID
	for _, r := range o.GetOwnerReferences() {
		out = append(out, r.UID)
	}
	return out
}

// waitObserved waits until the Go controller has acted on the generation.
func waitObserved(t *testing.T, ns, name string, generation int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("observedGeneration %d", generation), func() error {
		ds := getServer(t, k8s, ns, name)
		if ds.Status.ObservedGeneration < generation {
			return fmt.Errorf("observedGeneration %d", ds.Status.ObservedGeneration)
		}
		return nil
	})
}

// updateServer changes a DittoServer, retrying conflicts with the operator's status writes.
func updateServer(t *testing.T, ns, name string, mutate func(*v1alpha1.DittoServer)) *v1alpha1.DittoServer {
	t.Helper()
	var ds *v1alpha1.DittoServer
	eventually(t, "update DittoServer "+name, func() error {
		ds = getServer(t, k8s, ns, name)
		mutate(ds)
		return k8s.Update(ctx(), ds)
	})
	return ds
}
