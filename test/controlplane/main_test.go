// Package controlplane runs the operator (envtest) against the real DittoFS v0.29.0 server
// and a fake S3 (gofakes3) on 127.0.0.1, through the control-plane resolver seam
// (hybrid.ControlPlaneOptions): the API endpoint, the pod paths and the adapter ports of each
// DittoServer point at a dfs the test started.
package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

var (
	env *testenv.Env
	k8s client.Client
	nsN atomic.Int32
	// servers maps "<ns>/<name>" to the dfs backing that DittoServer.
	servers sync.Map
	// calls counts the operator's REST calls per dfs base URL and method.
	calls = &callCounter{m: map[string]int{}}
)

type backend struct {
	dfs            *dfstest.Server
	nfsPort, smbPt int
}

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		os.Exit(1)
	}
	k8s = env.Client
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

func ctx() context.Context { return context.Background() }

// startManager runs the operator with the control-plane step on, resolved to the test's dfs.
func startManager(t *testing.T) *testenv.Manager {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: calls}
	return env.StartManager(t, func(o *hybrid.Options) {
		o.ControlPlane = hybrid.ControlPlaneOptions{
			HTTPClient: hc,
			APIEndpoint: func(ds *v1alpha1.DittoServer, _ string) string {
				if b, ok := servers.Load(ds.Namespace + "/" + ds.Name); ok {
					return b.(*backend).dfs.URL
				}
				return "http://127.0.0.1:1"
			},
			PodPath: func(ds *v1alpha1.DittoServer, p string) string {
				if b, ok := servers.Load(ds.Namespace + "/" + ds.Name); ok {
					return filepath.Join(b.(*backend).dfs.Dir, "pod", p)
				}
				return p
			},
			AdapterPorts: func(ds *v1alpha1.DittoServer) map[string]int {
				if b, ok := servers.Load(ds.Namespace + "/" + ds.Name); ok {
					return map[string]int{"nfs": b.(*backend).nfsPort, "smb": b.(*backend).smbPt}
				}
				return nil
			},
		}
	})
}

// startBackend starts a dfs for DittoServer ns/name.
func startBackend(t *testing.T, ns, name string) *backend {
	b := &backend{dfs: dfstest.Start(t), nfsPort: dfstest.FreePort(t), smbPt: dfstest.FreePort(t)}
	servers.Store(ns+"/"+name, b)
	t.Cleanup(func() { servers.Delete(ns + "/" + name) })
	return b
}

// callCounter is an http.RoundTripper counting requests per host and method.
type callCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *callCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.m[r.URL.Host+" "+r.Method]++
	c.m[r.URL.Host+" "+r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// count returns the calls to url since the last reset: total and non-GET.
func (c *callCounter) count(url string) (total, writes int, detail string) {
	host := strings.TrimPrefix(url, "http://")
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for k, v := range c.m {
		if !strings.HasPrefix(k, host+" ") {
			continue
		}
		f := strings.Fields(k)
		if len(f) == 2 {
			total += v
			if f[1] != http.MethodGet {
				writes += v
			}
		} else {
			parts = append(parts, fmt.Sprintf("%s %s ×%d", f[1], f[2], v))
		}
	}
	return total, writes, strings.Join(parts, ", ")
}

func (c *callCounter) reset(url string) {
	host := strings.TrimPrefix(url, "http://")
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, host+" ") {
			delete(c.m, k)
		}
	}
}

func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("cp%d-%d", nsN.Add(1), time.Now().UnixNano()%100000)
	require.NoError(t, k8s.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	return name
}

// server is a DittoServer whose admin Secret holds the test dfs' admin password.
func server(t *testing.T, ns, name string, mutate func(*v1alpha1.DittoServerSpec)) *v1alpha1.DittoServer {
	t.Helper()
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "admin", Namespace: ns},
		StringData: map[string]string{"password": dfstest.AdminPassword},
	}))
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.DittoServerSpec{
			Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"},
			Identity: &v1alpha1.IdentitySpec{Admin: &v1alpha1.AdminSpec{PasswordSecretRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "admin"}, Key: "password"}}},
		},
	}
	if mutate != nil {
		mutate(&ds.Spec)
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	return ds
}

// fakeS3 runs gofakes3 (bin/tools/gofakes3-v1.2.0, built by make test) on 127.0.0.1 with the
// given buckets.
func fakeS3(t *testing.T, bucket string) string {
	t.Helper()
	bin := filepath.Join(testenv.RepoRoot(), "bin", "tools", "gofakes3-v1.2.0")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("gofakes3 missing (%s): run make test or make gofakes3", bin)
	}
	port := dfstest.FreePort(t)
	cmd := exec.Command(bin, "-backend", "memory", "-initialbucket", bucket, "-host", fmt.Sprintf("127.0.0.1:%d", port))
	log, err := os.Create(filepath.Join(t.TempDir(), "gofakes3.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.Eventually(t, "gofakes3 listening", func() error {
		resp, err := http.Get(url + "/")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	return fmt.Sprintf("127.0.0.1:%d", port) // no scheme: the operator adds it
}

// poke makes the operator reconcile ds now (a label on a Secret it references).
func poke(t *testing.T, ns, secret string) {
	t.Helper()
	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: secret}, s))
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels["poke"] = fmt.Sprint(time.Now().UnixNano())
	require.NoError(t, k8s.Update(ctx(), s))
}
