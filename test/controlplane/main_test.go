// Package controlplane runs the operator (envtest) against the real DittoFS v0.29.0 server
// and a fake S3 (gofakes3) on 127.0.0.1, through the control-plane resolver seam
// (controlplane.Options): the API endpoint, the pod paths and the adapter ports of each
// DittoServer point at a dfs the test started.
package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	smb2 "github.com/hirochachacha/go-smb2"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

var (
	env *testenv.Env
	k8s client.Client
	nsN atomic.Int32
	// servers maps "<ns>/<name>" to the dfs backing that DittoServer.
	servers sync.Map
	// endpoints maps "<ns>/<name>" to an API URL that is not a dfs (e.g. one that never answers).
	endpoints sync.Map
	// calls counts the operator's REST calls per dfs base URL and method.
	calls = &callCounter{mu: &sync.Mutex{}, m: map[string]int{}}
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

// startManager runs the operator with the control-plane step on, resolved to the test's dfs
// (or to endpoints[ns/name]); mutate adjusts the options.
func startManager(t *testing.T, mutate ...func(*controlplane.Options)) *testenv.Manager {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: calls}
	return env.StartManager(t, func(o *hybrid.Options) {
		o.ControlPlane = controlplane.Options{
			HTTPClient: hc,
			LoopbackS3: true, // gofakes3 listens on 127.0.0.1

			APIEndpoint: func(ds *v1alpha1.DittoServer, _ string) string {
				if b, ok := servers.Load(ds.Namespace + "/" + ds.Name); ok {
					return b.(*backend).dfs.URL
				}
				if u, ok := endpoints.Load(ds.Namespace + "/" + ds.Name); ok {
					return u.(string)
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
		for _, m := range mutate {
			m(&o.ControlPlane)
		}
	})
}

// startBackend starts a dfs for DittoServer ns/name.
func startBackend(t *testing.T, ns, name string, opts ...dfstest.Option) *backend {
	b := &backend{dfs: dfstest.Start(t, opts...), nfsPort: dfstest.FreePort(t), smbPt: dfstest.FreePort(t)}
	servers.Store(ns+"/"+name, b)
	t.Cleanup(func() { servers.Delete(ns + "/" + name) })
	return b
}

// callCounter is an http.RoundTripper counting requests per host and method.
type callCounter struct {
	mu *sync.Mutex
	m  map[string]int
	// next sends the requests (nil: http.DefaultTransport).
	next http.RoundTripper
}

func (c *callCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.m[r.URL.Host+" "+r.Method]++
	c.m[r.URL.Host+" "+r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	if c.next != nil {
		return c.next.RoundTrip(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// WithTLSConfig is the counter of a server whose API serves TLS (controlplane.TLSConfigurable):
// same counts, connections with cfg.
func (c *callCounter) WithTLSConfig(cfg *tls.Config) http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &callCounter{mu: c.mu, m: c.m, next: tr}
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

// s3Fake is gofakes3 (bin/tools/gofakes3-v1.2.0, built by make test) on 127.0.0.1 behind a
// recording proxy: gofakes3 checks no signature, so the proxy records which access key signed
// each request.
type s3Fake struct {
	// Endpoint is the proxy's host:port, without a scheme (the operator adds it).
	Endpoint string
	backend  string
	mu       sync.Mutex
	writes   map[string]int // access key ID -> PUT and POST requests signed with it
}

var credentialRE = regexp.MustCompile(`Credential=([^/]+)/`)

// fakeS3 starts gofakes3 with bucket and its proxy; both stop with the test.
func fakeS3(t *testing.T, bucket string) *s3Fake {
	t.Helper()
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "tools", "gofakes3-v1.2.0")
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
	f := &s3Fake{backend: fmt.Sprintf("http://127.0.0.1:%d", port), writes: map[string]int{}}
	testenv.Eventually(t, "gofakes3 listening", func() error {
		resp, err := http.Get(f.backend + "/")
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
	target, err := url.Parse(f.backend)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut || r.Method == http.MethodPost {
			key := "unsigned"
			if m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
				key = m[1]
			}
			f.mu.Lock()
			f.writes[key]++
			f.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return f
}

// signedWrites returns the writes per access key ID since the last call.
func (f *s3Fake) signedWrites() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.writes
	f.writes = map[string]int{}
	return out
}

// objects lists the bucket (straight from gofakes3): key -> size.
func (f *s3Fake) objects(t *testing.T, bucket string) map[string]int64 {
	t.Helper()
	resp, err := http.Get(f.backend + "/" + bucket + "?list-type=2")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var res struct {
		Contents []struct {
			Key  string
			Size int64
		}
		IsTruncated bool
	}
	require.NoError(t, xml.NewDecoder(resp.Body).Decode(&res))
	require.False(t, res.IsTruncated, "more than one page of objects")
	out := map[string]int64{}
	for _, c := range res.Contents {
		out[c.Key] = c.Size
	}
	return out
}

// writeOverSMB writes data to a new file on the share over SMB (go-smb2, NTLM), flushes and
// closes it, and reads it back.
func writeOverSMB(t *testing.T, port int, user, password, share, name string, data []byte) {
	t.Helper()
	var conn net.Conn
	testenv.Eventually(t, "SMB adapter listening", func() (err error) {
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 2*time.Second)
		return err
	})
	defer func() { _ = conn.Close() }()
	d := &smb2.Dialer{Initiator: &smb2.NTLMInitiator{User: user, Password: password}}
	session, err := d.Dial(conn)
	require.NoError(t, err, "SMB session as %s", user)
	defer func() { _ = session.Logoff() }()
	fs, err := session.Mount(strings.TrimPrefix(share, "/"))
	require.NoError(t, err, "SMB tree connect to %s", share)
	defer func() { _ = fs.Umount() }()
	file, err := fs.Create(name)
	require.NoError(t, err)
	_, err = file.Write(data)
	require.NoError(t, err)
	require.NoError(t, file.Sync())
	require.NoError(t, file.Close())
	got, err := fs.ReadFile(name)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "read back %d bytes, wrote %d", len(got), len(data))
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
