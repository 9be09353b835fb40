//go:build linux

package conformance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// dfsOutput runs a short dfs subcommand of the pod (same user, env and namespace) and returns
// its combined output and exit code.
func (p *pod) dfsOutput(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := p.sb.command(p.user, p.env, append([]string{dfsBin}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runBounded(cmd, 30*time.Second)
	code := 0
	if err != nil {
		code = -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}
	return out.String(), code
}

// runBounded runs cmd and kills it (by PID) after d.
func runBounded(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s timed out after %s and was killed: %w", cmd.Path, d, <-done)
	}
}

// checkConfig runs `dfs config validate` (exit 0, no warning of any kind, in particular no
// unknown key) and `dfs config show -o json` (the server reads what the operator meant).
func (p *pod) checkConfig(t *testing.T) {
	t.Helper()
	out, code := p.dfsOutput(t, "config", "validate", "--config", p.configPath)
	require.NoError(t, validateOutputOK(out, code))

	out, code = p.dfsOutput(t, "config", "show", "--config", p.configPath, "-o", "json")
	require.Equal(t, 0, code, out)
	first, last := strings.Index(out, "{"), strings.LastIndex(out, "}")
	require.True(t, first >= 0 && last > first, "dfs config show -o json printed no JSON: %s", out)
	eff, err := parseConfig(out[first : last+1])
	require.NoError(t, err, out)
	str := func(path string) string {
		v, _ := lookup(eff, path)
		return fmt.Sprint(v)
	}
	bind := "0.0.0.0"
	if !useNetns {
		bind = "127.0.0.1" // the fallback's only override
	}
	assert.Equal(t, bind, str("controlplane.host"), "effective controlplane.host")
	assert.Equal(t, strconv.Itoa(int(p.ds.Spec.APIPort())), str("controlplane.port"), "effective controlplane.port")
	assert.Equal(t, "stdout", str("logging.output"), "effective logging.output")
	defaulted := p.ds.DeepCopy()
	defaulted.Default()
	assert.Equal(t, defaulted.Spec.Logging.Level, strings.ToUpper(str("logging.level")), "effective logging.level")
	assert.Equal(t, defaulted.Spec.Logging.Format, str("logging.format"), "effective logging.format")
	if specs.UsesPostgres(&p.ds.Spec) {
		assert.Equal(t, "postgres", str("database.type"))
		host, _ := p.envValue(specs.EnvPostgresHost)
		assert.Equal(t, host, str("database.postgres.host"), "the server must read the PostgreSQL host from the env")
	} else {
		assert.Equal(t, "sqlite", str("database.type"))
		want, ok := p.mapPath(defaulted.Spec.Database.SQLite.Path)
		require.True(t, ok)
		assert.Equal(t, want, str("database.sqlite.path"), "the SQLite DB must be on the controlplane volume")
		assert.True(t, strings.HasPrefix(want, p.mounts[specs.ControlPlaneMountPath]+"/"))
	}
	if p.ds.Spec.MetricsEnabled() {
		assert.Equal(t, "true", str("metrics.enabled"))
		assert.Equal(t, bind, str("metrics.host"))
		assert.Equal(t, strconv.Itoa(int(p.ds.Spec.MetricsPort())), str("metrics.port"))
		assert.Equal(t, p.ds.Spec.MetricsPath(), str("metrics.path"))
		if p.ds.Spec.MetricsTokenRef() != nil {
			assert.Equal(t, "token", str("metrics.auth"))
		} else {
			assert.Equal(t, "none", str("metrics.auth"))
		}
	} else {
		assert.Equal(t, "false", str("metrics.enabled"))
	}
}

// validateOutputOK accepts the output of `dfs config validate` only when it exited 0 and
// reported no warning (unknown keys are only a stderr warning in v0.29.0).
func validateOutputOK(out string, code int) error {
	switch {
	case code != 0:
		return fmt.Errorf("dfs config validate exited %d:\n%s", code, out)
	case strings.Contains(out, "unknown keys"):
		return fmt.Errorf("dfs config validate warns about unknown keys:\n%s", out)
	case strings.Contains(out, "WARNING") || strings.Contains(out, "warning(s)"):
		return fmt.Errorf("dfs config validate reports warnings:\n%s", out)
	case !strings.Contains(out, "Validation: OK"):
		return fmt.Errorf("dfs config validate did not say OK:\n%s", out)
	}
	return nil
}

// start runs the init containers, then starts the container's own command in the sandbox.
func (p *pod) start(t *testing.T, label string) *proc {
	t.Helper()
	p.initTook = p.runInits(t, label)
	cmd := p.sb.command(p.user, p.env, p.argv...)
	pr := startProc(t, "dfs "+p.name+" "+label, cmd, filepath.Join(p.base, "dfs-"+label+".log"))
	return pr
}

// runInits runs the init containers in order, as the kubelet does before the server starts;
// each must exit 0. It returns the time they took.
func (p *pod) runInits(t *testing.T, label string) time.Duration {
	t.Helper()
	start := time.Now()
	for _, ic := range p.inits {
		cmd := p.sb.command(ic.user, ic.env, ic.argv...)
		pr := startProc(t, "init container "+ic.name+" of "+p.name+" "+label, cmd, filepath.Join(p.base, "init-"+ic.name+"-"+label+".log"))
		limit := time.Duration(specs.PostgresWaitTimeoutSeconds+30) * time.Second
		code, done := pr.wait(limit)
		require.True(t, done, "init container %s still runs after %s", ic.name, limit)
		require.Equal(t, 0, code, "init container %s failed:\n%s", ic.name, pr.logTail(20))
		t.Logf("init container %s: exit 0 after %s: %s", ic.name, time.Since(pr.started).Round(time.Millisecond), strings.TrimSpace(pr.logTail(1)))
	}
	return time.Since(start)
}

// probeURL is the URL the kubelet would GET for an HTTP probe of the container.
func (p *pod) probeURL(t testing.TB, probe *corev1.Probe) string {
	t.Helper()
	require.NotNil(t, probe)
	require.NotNil(t, probe.HTTPGet, "only HTTP probes are exercised")
	h := probe.HTTPGet
	port := h.Port.IntValue()
	if h.Port.StrVal != "" {
		named, ok := p.containerPort(h.Port.StrVal)
		require.True(t, ok, "probe port %q is no container port", h.Port.StrVal)
		port = int(named)
	}
	host := h.Host
	if host == "" {
		host = p.sb.podIP
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	return fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), h.Path)
}

// probeBudget is how long the kubelet lets a probe fail before acting.
func probeBudget(probe *corev1.Probe) time.Duration {
	return time.Duration(probe.InitialDelaySeconds+probe.FailureThreshold*probe.PeriodSeconds) * time.Second
}

// waitReady polls the startup, then readiness and liveness probes like the kubelet (more often)
// and returns the time from start to the first successful readiness probe.
func (p *pod) waitReady(t *testing.T, pr *proc) time.Duration {
	t.Helper()
	c := p.container
	budget := probeBudget(c.StartupProbe)
	deadline := pr.started.Add(budget)
	client := p.sb.probeClient(time.Duration(c.StartupProbe.TimeoutSeconds) * time.Second)
	var readyAt time.Duration
	for _, step := range []struct {
		name  string
		probe *corev1.Probe
	}{{"startup", c.StartupProbe}, {"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
		url := p.probeURL(t, step.probe)
		last := ""
		for {
			require.True(t, pr.running(), "dfs exited before its %s probe passed (exit %d)", step.name, exitCode(pr))
			code, err := httpStatus(client, url)
			if err == nil && code >= 200 && code < 400 {
				break
			}
			last = fmt.Sprintf("status %d err %v", code, err)
			require.True(t, time.Now().Before(deadline), "%s probe %s did not pass within the startup budget %s: %s", step.name, url, budget, last)
			time.Sleep(25 * time.Millisecond)
		}
		if step.name == "readiness" {
			readyAt = time.Since(pr.started)
		}
	}
	return readyAt
}

func exitCode(pr *proc) int {
	if code, done := pr.wait(0); done {
		return code
	}
	return 0
}

func httpStatus(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// api is the control plane REST API as the operator (and dfsctl) uses it.
type api struct {
	t      *testing.T
	base   string
	client *http.Client
	token  string
}

func (p *pod) api(t *testing.T) *api {
	port, ok := p.containerPort("api")
	require.True(t, ok, "the container has no port named api")
	require.Equal(t, p.ds.Spec.APIPort(), port, "container port api")
	base := fmt.Sprintf("%s://%s", specs.APIScheme(p.ds), net.JoinHostPort(p.sb.podIP, strconv.Itoa(int(port))))
	if !p.ds.Spec.APITLSEnabled() {
		return &api{t: t, base: base, client: p.sb.httpClient(15 * time.Second)}
	}
	// As the operator does: trust the ca.crt of the certificate's Secret and verify the name
	// <name>-api.<namespace>.svc while dialing the pod's IP.
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM([]byte(p.secrets[specs.APITLSSecretName(p.ds)][specs.APITLSCAKey])), "ca.crt of the API certificate's Secret")
	cfg := &tls.Config{RootCAs: roots, ServerName: specs.APIServerName(p.ds), MinVersion: tls.VersionTLS12}
	return &api{t: t, base: base, client: p.sb.tlsClient(15*time.Second, cfg)}
}

// call sends a JSON request and decodes a JSON answer into out (when non-nil); it fails the test
// unless the status is one of want.
func (a *api) call(method, path string, body, out any, want ...int) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(a.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.base+path, rd)
	require.NoError(a.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err, "%s %s", method, path)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	require.Contains(a.t, want, resp.StatusCode, "%s %s: %s", method, path, data)
	if out != nil {
		require.NoError(a.t, json.Unmarshal(data, out), "%s %s: %s", method, path, data)
	}
}

func (a *api) login(user, password string) {
	a.t.Helper()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	a.token = ""
	a.call(http.MethodPost, "/api/v1/auth/login", map[string]string{"username": user, "password": password}, &tok, http.StatusOK)
	require.NotEmpty(a.t, tok.AccessToken, "login returned no access token")
	a.token = tok.AccessToken
}

type adapter struct {
	Type    string `json:"type"`
	Port    int    `json:"port"`
	Enabled bool   `json:"enabled"`
	Running bool   `json:"running"`
}

type named struct {
	Name string `json:"name"`
}

func names(items []named) []string {
	out := make([]string, 0, len(items))
	for _, i := range items {
		out = append(out, i.Name)
	}
	return out
}

// checkAdapters lists the adapters and checks the default ones against the container ports.
func (p *pod) checkAdapters(t *testing.T, a *api) {
	t.Helper()
	var adapters []adapter
	a.call(http.MethodGet, "/api/v1/adapters", nil, &adapters, http.StatusOK)
	byType := map[string]adapter{}
	for _, ad := range adapters {
		byType[ad.Type] = ad
	}
	t.Logf("adapters: %+v", adapters)
	nfs, ok := byType["nfs"]
	require.True(t, ok, "no NFS adapter after first boot: %+v", adapters)
	assert.Equal(t, specs.NFSAdapterPort, nfs.Port, "default NFS adapter port")
	if smb, ok := byType["smb"]; ok {
		assert.Equal(t, specs.SMBAdapterPort, smb.Port, "default SMB adapter port")
	}
	// Each file port the container declares is served by the adapter on that port.
	for _, name := range []string{"nfs", "smb"} {
		port, declared := p.containerPort(name)
		if !declared {
			continue
		}
		ad, ok := byType[name]
		require.True(t, ok, "container port %s has no adapter", name)
		require.Equal(t, int(port), ad.Port, "container port %s vs the adapter's port", name)
		require.True(t, ad.Enabled, "adapter %s is disabled", name)
		addr := net.JoinHostPort(p.sb.podIP, strconv.Itoa(int(port)))
		require.Eventually(t, func() bool {
			c, err := p.sb.dial(context.Background(), "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		}, 10*time.Second, 50*time.Millisecond, "the %s adapter does not accept connections on %s", name, addr)
	}
}

// checkMetrics scrapes the metrics port the container declares.
func (p *pod) checkMetrics(t *testing.T) {
	t.Helper()
	port, ok := p.containerPort("metrics")
	require.True(t, ok, "metrics are enabled but the container declares no metrics port")
	require.Equal(t, p.ds.Spec.MetricsPort(), port)
	path := "/metrics"
	if v, ok := lookup(p.configTree, "metrics.path"); ok {
		path = fmt.Sprint(v)
	}
	require.Equal(t, p.ds.Spec.MetricsPath(), path, "the server serves metrics where the spec says")
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort(p.sb.podIP, strconv.Itoa(int(port))), path)
	client := p.sb.httpClient(10 * time.Second)
	get := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	token := ""
	if ref := p.ds.Spec.MetricsTokenRef(); ref != nil {
		token = strings.TrimSpace(p.secrets[ref.Name][ref.Key])
		require.NotEmpty(t, token)
	}
	var body string
	require.Eventually(t, func() bool {
		code, b, err := get(token)
		body = b
		return err == nil && code == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "GET %s", url)
	assert.Contains(t, body, "# TYPE", "metrics body is not Prometheus text")
	if token != "" {
		for _, bad := range []string{"", "not-" + token} {
			code, _, err := get(bad)
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, code, "a scrape with token %q must be refused", bad)
		}
	}
}

// Names of what the case creates through the API.
const (
	metaStoreName  = "meta"
	blockStoreName = "local"
	shareName      = "/export"
)

// createShare creates a badger metadata store on the metadata volume, an fs local block store
// on the cache volume and a share using both.
func (p *pod) createShare(t *testing.T, a *api) {
	t.Helper()
	metaPath, ok := p.mapPath(specs.MetadataMountPath + "/" + metaStoreName)
	require.True(t, ok)
	blockPath, ok := p.mapPath(specs.CacheMountPath + "/blocks")
	require.True(t, ok)
	cfg := func(path string) string {
		b, _ := json.Marshal(map[string]string{"path": path})
		return string(b)
	}
	a.call(http.MethodPost, "/api/v1/store/metadata",
		map[string]string{"name": metaStoreName, "type": "badger", "config": cfg(metaPath)}, nil, http.StatusCreated, http.StatusOK)
	a.call(http.MethodPost, "/api/v1/store/block/local",
		map[string]string{"name": blockStoreName, "type": "fs", "config": cfg(blockPath)}, nil, http.StatusCreated, http.StatusOK)
	a.call(http.MethodPost, "/api/v1/shares",
		map[string]string{"name": shareName, "metadata_store_id": metaStoreName, "local_block_store": blockStoreName}, nil, http.StatusCreated, http.StatusOK)
	p.checkShare(t, a)
	entries, err := os.ReadDir(metaPath)
	require.NoError(t, err, "the badger store is not on the metadata volume")
	require.NotEmpty(t, entries, "the badger store wrote nothing on the metadata volume")
	_, err = os.Stat(blockPath)
	require.NoError(t, err, "the fs block store is not on the cache volume")
}

// checkShare checks the stores and the share are listed.
func (p *pod) checkShare(t *testing.T, a *api) {
	t.Helper()
	var metas, blocks, shares []named
	a.call(http.MethodGet, "/api/v1/store/metadata", nil, &metas, http.StatusOK)
	a.call(http.MethodGet, "/api/v1/store/block/local", nil, &blocks, http.StatusOK)
	a.call(http.MethodGet, "/api/v1/shares", nil, &shares, http.StatusOK)
	assert.Contains(t, names(metas), metaStoreName)
	assert.Contains(t, names(blocks), blockStoreName)
	require.Contains(t, names(shares), shareName)
}

// stop sends SIGTERM (after the kubelet's preStop, which a sleep action spends outside the
// container) and requires exit 0 within the grace period left after the preStop sleep.
func (p *pod) stop(t *testing.T, pr *proc) time.Duration {
	t.Helper()
	grace := time.Duration(*p.sts.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	preStop := time.Duration(0)
	if l := p.container.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	budget := grace - preStop
	require.Positive(t, budget, "termination grace period %s does not exceed the preStop sleep %s", grace, preStop)
	require.True(t, pr.running(), "dfs is not running before SIGTERM")
	start := time.Now()
	require.NoError(t, pr.cmd.Process.Signal(syscall.SIGTERM))
	code, done := pr.wait(budget)
	took := time.Since(start)
	require.True(t, done, "dfs did not exit within %s after SIGTERM (grace %s - preStop %s)", budget, grace, preStop)
	require.Equal(t, 0, code, "dfs exit code after SIGTERM")
	return took
}

// requireIsDFS checks the started process is dfs itself (nsenter/setpriv exec'd it), so
// signals and /proc readings hit the server, and that it runs as the pod's user.
func requireIsDFS(t *testing.T, p *pod, pr *proc) {
	t.Helper()
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pr.pid()))
	require.NoError(t, err)
	require.Equal(t, "dfs", strings.TrimSpace(string(comm)))
	if !p.user.switchUser {
		return
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pr.pid()))
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Uid:":
			require.Equal(t, strconv.FormatInt(p.user.uid, 10), f[1], "dfs real uid")
		case len(f) >= 2 && f[0] == "Gid:":
			require.Equal(t, strconv.FormatInt(p.user.gid, 10), f[1], "dfs real gid")
		}
	}
}
