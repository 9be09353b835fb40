// Package dfstest runs the real DittoFS v0.29.0 server (bin/dittofs/v0.29.0/dfs, built by
// hack/build-dittofs.sh) on 127.0.0.1 for tests: SQLite control plane in a temporary
// directory, the API on a free port, the admin bootstrapped with a known password.
package dfstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dittofs/dittofs-operator/internal/dittoapi"
)

// AdminPassword is the bootstrap admin password of every test server.
const AdminPassword = "admin-password-for-tests"

// Server is one dfs process (restartable, same data directory).
type Server struct {
	Dir     string
	Port    int
	URL     string
	Binary  string
	LogPath string
	Env     []string
	// HTTPClient trusts the server's certificate (WithTLS); http.DefaultClient otherwise.
	HTTPClient *http.Client

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary finds dfs: $DFS_BINARY, else <repo>/bin/dittofs/v0.29.0/dfs. Skips the test when
// it is missing.
func Binary(t testing.TB) string {
	if b := os.Getenv("DFS_BINARY"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	b := filepath.Join(root, "bin", "dittofs", "v0.29.0", "dfs")
	if _, err := os.Stat(b); err != nil {
		t.Skipf("dfs not built (%s): run bash hack/build-dittofs.sh", b)
	}
	return b
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Option changes the configuration of a test server.
type Option func(*options)

type options struct {
	setup          func(dir string) string
	accessTokenTTL time.Duration
	certPEM        []byte
	keyPEM         []byte
	caPEM          []byte
}

// WithAccessTokenTTL sets controlplane.jwt.access_token_duration (DittoFS default 15m).
func WithAccessTokenTTL(d time.Duration) Option { return func(o *options) { o.accessTokenTTL = d } }

// WithTLS serves the API over HTTPS with the given certificate (controlplane.tls); the test's
// own clients (Launch, Admin) trust caPEM.
func WithTLS(certPEM, keyPEM, caPEM []byte) Option {
	return func(o *options) { o.certPEM, o.keyPEM, o.caPEM = certPEM, keyPEM, caPEM }
}

// WithSetup runs setup with the server's directory before the first start; the YAML it returns
// is appended to the config file (top-level keys, e.g. a kerberos block).
func WithSetup(setup func(dir string) string) Option { return func(o *options) { o.setup = setup } }

// Start runs a fresh server and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, Port: FreePort(t), Binary: Binary(t), LogPath: filepath.Join(dir, "dfs.log"), HTTPClient: http.DefaultClient}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", s.Port)
	if o.certPEM != nil {
		s.URL = fmt.Sprintf("https://127.0.0.1:%d", s.Port)
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(o.caPEM) {
			t.Fatal("dfstest.WithTLS: no CA certificate")
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		s.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	cfg := fmt.Sprintf(`logging:
  level: INFO
  output: stdout
shutdown_timeout: 2s
database:
  type: sqlite
  sqlite:
    path: %s/controlplane/controlplane.db
controlplane:
  host: 127.0.0.1
  port: %d
  require_initial_password_change: false
`, dir, s.Port)
	if o.accessTokenTTL > 0 {
		cfg += fmt.Sprintf("  jwt:\n    access_token_duration: %s\n", o.accessTokenTTL)
	}
	if o.certPEM != nil {
		for name, data := range map[string][]byte{"tls.crt": o.certPEM, "tls.key": o.keyPEM} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg += fmt.Sprintf("  tls:\n    cert_file: %s/tls.crt\n    key_file: %s/tls.key\n", dir, dir)
	}
	if o.setup != nil {
		cfg += o.setup(dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH"),
		"DITTOFS_CONTROLPLANE_SECRET=jwt-secret-for-tests-0123456789abcdef",
		"DITTOFS_ADMIN_INITIAL_PASSWORD=" + AdminPassword}
	for _, kv := range os.Environ() {
		// AWS_CA_BUNDLE breaks every S3 store; other AWS_* would leak into the server.
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "DITTOFS_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	s.Env = env
	s.Launch(t)
	// DittoFS starts its default adapters on all interfaces. The SMB adapter honours a bind
	// address (kept in its database, so restarts keep it); v0.29.0's NFS adapter has none and
	// keeps listening on all interfaces, on the port a test gives it.
	smbOnLoopback := map[string]any{"bind_address": "127.0.0.1"}
	if _, err := s.Admin(t).UpdateAdapter(context.Background(), "smb", dittoapi.UpdateAdapterRequest{Config: smbOnLoopback}); err != nil {
		t.Fatalf("binding the SMB adapter to 127.0.0.1: %v", err)
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(s.LogPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("dfs log tail:\n%s", strings.Join(lines, "\n"))
		}
	})
	return s
}

// Launch starts the process and waits for GET /health.
func (s *Server) Launch(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s.Binary, "start", "--foreground", "--config", filepath.Join(s.Dir, "config.yaml"))
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = s.Dir, s.Env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := s.HTTPClient.Get(s.URL + "/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.LogPath)
	t.Fatalf("dfs did not answer /health/ready within 30s:\n%s", b)
}

// Stop terminates the process (SIGTERM, then SIGKILL after 15s).
func (s *Server) Stop(t testing.TB) {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops and starts the server on the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Launch(t)
}

// Admin returns a client logged in as admin.
func (s *Server) Admin(t testing.TB) *dittoapi.Client {
	t.Helper()
	c := dittoapi.New(s.URL, s.HTTPClient)
	if _, err := c.Login(context.Background(), "admin", AdminPassword); err != nil {
		t.Fatalf("admin login: %v", err)
	}
	return c
}
