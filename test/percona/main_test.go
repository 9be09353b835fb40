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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
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
		if !strings.Contains(doc, "\n  name: "+specs.PerconaCRDName+"\n") {
			continue
		}
		dir, err := os.MkdirTemp("", "percona-crd-")
		if err != nil {
			return "", err
		}
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---\n")
		return dir, os.WriteFile(filepath.Join(dir, specs.PerconaCRDName+".yaml"), []byte(doc), 0o600)
	}
	return "", fmt.Errorf("no %s in deploy/crd.yaml", specs.PerconaCRDName)
}

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

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	testenv.Eventually(t, what, f)
}

func getServer(t *testing.T, c client.Client, ns, name string) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.GetServer(t, c, ns, name)
}

func condition(ds *v1alpha1.DittoServer, t string) *metav1.Condition { return testenv.Condition(ds, t) }

func waitCondition(t *testing.T, c client.Client, ns, name, condType string, status metav1.ConditionStatus, reason string, contains ...string) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.WaitCondition(t, c, ns, name, condType, status, reason, contains...)
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

// perconaUserSecret plays the Percona operator: it creates (or rewrites) the user Secret, after
// the cluster's certificate Secret (made once, as Percona does when it creates the cluster).
func perconaUserSecret(t *testing.T, ns, server, password string) {
	t.Helper()
	cluster := server + "-postgres"
	if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: cluster + "-cluster-cert"}, &corev1.Secret{}); apierrors.IsNotFound(err) {
		perconaClusterCert(t, ns, server, "ca of "+cluster)
	}
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
	return testenv.GetStatefulSet(t, k8s, ns, name)
}

func markStatefulSetReady(t *testing.T, ns, name string) {
	t.Helper()
	testenv.MarkStatefulSetReady(t, k8s, ns, name)
}

func events(t *testing.T, c client.Client, ns, name, reason string) []string {
	t.Helper()
	return testenv.Events(t, c, ns, name, reason)
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

func reconcileCount(t *testing.T) float64 {
	t.Helper()
	return testenv.ReconcileCount(t, "dittoserver-go")
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

func updateServer(t *testing.T, ns, name string, mutate func(*v1alpha1.DittoServer)) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.UpdateServer(t, k8s, ns, name, mutate)
}

// perconaClusterCert plays the Percona operator: it writes <cluster>-cluster-cert with its CA.
func perconaClusterCert(t *testing.T, ns, server, ca string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: server + "-postgres-cluster-cert", Namespace: ns}}
	data := map[string][]byte{"ca.crt": []byte(ca), "tls.crt": []byte("leaf"), "tls.key": []byte("key")}
	if err := k8s.Get(ctx(), client.ObjectKeyFromObject(s), s); err == nil {
		s.Data = data
		require.NoError(t, k8s.Update(ctx(), s))
		return
	}
	s.Data = data
	require.NoError(t, k8s.Create(ctx(), s))
}
