package hybrid

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/internal/validation"
	"github.com/dittofs/dittofs-operator/test/apiserver"
)

// The step tests run each step alone against a real kube-apiserver (no manager, no
// controllers): the Reconciler gets a direct client and only what the step uses.
var (
	server *apiserver.Server
	k8s    client.Client
	nsN    atomic.Int32
)

func TestMain(m *testing.M) {
	var err error
	server, err = apiserver.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = server.Client
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

func ctx() context.Context { return context.Background() }

func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("steps-%d-%d", time.Now().UnixNano()%100000, nsN.Add(1))
	require.NoError(t, k8s.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// newReconciler is a Go controller wired to the API server directly.
func newReconciler(t *testing.T) (*Reconciler, *record.FakeRecorder) {
	t.Helper()
	chrt, err := specs.LoadChart(charts.FS, "helm-charts/dittoserver")
	require.NoError(t, err)
	events := record.NewFakeRecorder(100)
	secrets := NewSecretReader(nil, k8s)
	return &Reconciler{
		Client:        k8s,
		APIReader:     k8s,
		Secrets:       secrets,
		Scheme:        server.Scheme,
		Recorder:      events,
		Renderer:      &specs.Renderer{Chart: chrt},
		Validator:     &validation.Validator{Reader: k8s, SecretReader: secrets, Mapper: k8s.RESTMapper()},
		ClusterDomain: "cluster.local",
	}, events
}

// newServer creates a DittoServer and returns it as the API server has it.
func newServer(t *testing.T, ns, name string, mutate ...func(*v1alpha1.DittoServerSpec)) *v1alpha1.DittoServer {
	t.Helper()
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	for _, m := range mutate {
		m(&ds.Spec)
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	return ds
}

func newSecret(t *testing.T, ns, name string, data map[string]string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	require.NoError(t, k8s.Create(ctx(), s))
	return s
}

// drain returns the events recorded so far.
func drain(events *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}
