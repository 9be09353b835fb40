//go:build linux

package conformance

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// PostgreSQL roles and databases of the cases.
const (
	uriUser      = "ditto_uri"
	uriDB        = "dittofs_uri"
	perconaUser  = specs.PerconaUser
	perconaDB    = "dittofs"
	downUser     = "ditto_down"
	downDB       = "dittofs_down"
	downPassword = "down-pw"
	// uriPassword holds the characters that break naive URI and shell handling.
	uriPassword = `p@ss:w/rd?#[]%&=+ !$'"\;,`
)

// caseResult is one line of the summary.
type caseResult struct {
	name                string
	ready, readyRestart time.Duration
	rssKB, rssRestartKB int64
	stop                time.Duration
	note                string
}

type results struct {
	mu   sync.Mutex
	list []caseResult
}

func (r *results) add(c caseResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, c)
}

func (r *results) print(t *testing.T, start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sort.Slice(r.list, func(i, j int) bool { return r.list[i].name < r.list[j].name })
	var b strings.Builder
	fmt.Fprintf(&b, "conformance summary (dfs %s, %s):\n", DittoFSVersion, map[bool]string{true: "one network namespace per pod", false: "FALLBACK host network"}[useNetns])
	for _, c := range r.list {
		if c.note != "" {
			fmt.Fprintf(&b, "  %-32s %s\n", c.name, c.note)
			continue
		}
		fmt.Fprintf(&b, "  %-32s ready %-7s restart-ready %-7s VmHWM %6d kB (restart %6d kB)  SIGTERM->exit %s\n",
			c.name, c.ready.Round(time.Millisecond), c.readyRestart.Round(time.Millisecond), c.rssKB, c.rssRestartKB, c.stop.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  total %s", time.Since(start).Round(time.Millisecond))
	t.Log(b.String())
}

// exercise is the whole life of a server: config checks, boot, probes, login, adapters,
// metrics, stores and a share, SIGTERM, and a restart on the same volumes.
func exercise(t *testing.T, p *pod) caseResult {
	t.Helper()
	res := caseResult{name: p.name}
	p.checkConfig(t)

	pr := p.start(t, "boot1")
	res.ready = p.waitReady(t, pr)
	requireIsDFS(t, p, pr)
	a := p.api(t)
	a.call("POST", "/api/v1/auth/login", map[string]string{"username": p.adminUser, "password": p.adminPassword + "x"}, nil, 401)
	a.login(p.adminUser, p.adminPassword)
	p.checkAdapters(t, a)
	if p.ds.Spec.MetricsEnabled() {
		p.checkMetrics(t)
	}
	p.createShare(t, a)
	if p.check != nil {
		p.check(t, p, a)
	}
	var err error
	res.rssKB, err = vmHWM(pr.pid())
	require.NoError(t, err)
	res.stop = p.stop(t, pr)

	pr = p.start(t, "boot2")
	res.readyRestart = p.waitReady(t, pr)
	a = p.api(t)
	a.login(p.adminUser, p.adminPassword)
	p.checkShare(t, a)
	res.rssRestartKB, err = vmHWM(pr.pid())
	require.NoError(t, err)
	p.stop(t, pr)
	t.Logf("SUMMARY %s: ready %s, restart ready %s, VmHWM %d kB / %d kB, SIGTERM->exit 0 in %s",
		p.name, res.ready.Round(time.Millisecond), res.readyRestart.Round(time.Millisecond), res.rssKB, res.rssRestartKB, res.stop.Round(time.Millisecond))
	return res
}

// expectBootFailure starts dfs and requires a non-zero exit within limit.
func expectBootFailure(t *testing.T, p *pod, limit time.Duration) (int, time.Duration) {
	t.Helper()
	p.checkConfig(t)
	pr := p.start(t, "boot")
	code, done := pr.wait(limit)
	took := time.Since(pr.started)
	require.True(t, done, "dfs still runs %s after start; expected it to exit:\n%s", limit, pr.logTail(20))
	require.NotEqual(t, 0, code, "dfs exited 0; expected a failure:\n%s", pr.logTail(20))
	t.Logf("dfs exited %d after %s; last lines:\n%s", code, took.Round(time.Millisecond), pr.logTail(5))
	return code, took
}

// userSecret points a DittoServer at a key of a user Secret.
func userSecret(name, key string) *corev1.SecretKeySelector {
	return &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

// withoutEnv drops an env var from the container (negative cases).
func withoutEnv(name string) func(c *corev1.Container) {
	return func(c *corev1.Container) {
		var env []corev1.EnvVar
		for _, e := range c.Env {
			if e.Name != name {
				env = append(env, e)
			}
		}
		c.Env = env
	}
}

// waitScript runs the init container's PostgreSQL wait in the pod's sandbox with the pod's
// PostgreSQL env.
func waitScript(t *testing.T, p *pod, script string, limit time.Duration) (int, time.Duration, string) {
	t.Helper()
	env := []string{"PATH=" + postgresBinDir(t) + ":" + imagePath}
	for _, name := range []string{specs.EnvPostgresHost, specs.EnvPostgresPort, specs.EnvPostgresUser} {
		v, ok := p.envValue(name)
		require.True(t, ok, "the pod env has no %s", name)
		env = append(env, name+"="+v)
	}
	cmd := p.sb.command(p.user, env, "/bin/sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := runBounded(cmd, limit)
	took := time.Since(start)
	code := 0
	if err != nil {
		code = -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}
	return code, took, out.String()
}

func TestOperandConformance(t *testing.T) {
	start := time.Now()
	res := &results{}
	t.Cleanup(func() { res.print(t, start) })

	sqliteCases := []podCase{
		{
			// Everything defaulted; the JWT and admin Secrets are the operator-generated ones.
			name: "sqlite-default",
			ds:   newDittoServer("conf-default", nil),
		},
		{
			// Metrics on a custom port and path behind a bearer token from a Secret (mounted
			// as a file), and DEBUG/text logs.
			name: "metrics-token-path-debug-text-logs",
			ds: newDittoServer("conf-metrics", func(s *v1alpha1.DittoServerSpec) {
				s.Metrics = &v1alpha1.MetricsSpec{Port: 9464, Path: "/prom/metrics", BearerTokenSecretRef: userSecret("scrape", "token")}
				s.Logging = &v1alpha1.LoggingSpec{Level: "DEBUG", Format: "text"}
			}),
			secrets: secretData{"scrape": {"token": "a-scrape-token-0123456789\n"}},
		},
		{
			name: "metrics-off",
			ds: newDittoServer("conf-nometrics", func(s *v1alpha1.DittoServerSpec) {
				s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(false)}
			}),
		},
		{
			// Custom API port, SMB on, a SQLite path in a subdirectory of the volume, and
			// user-given JWT/admin Secrets and API certificate (as cert-manager makes them).
			name: "custom-api-port-user-secrets",
			ds: newDittoServer("conf-ports", func(s *v1alpha1.DittoServerSpec) {
				s.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 9000, TLS: &v1alpha1.APITLSSpec{Mode: v1alpha1.APITLSSecret, SecretName: "from-cert-manager"}}
				s.Database = &v1alpha1.DatabaseSpec{SQLite: &v1alpha1.SQLiteSpec{Path: "/data/controlplane/db/dittofs.db"}}
				s.NFSPort = ptr.To(int32(2049))
				s.SMB = &v1alpha1.SMBSpec{Enabled: true, Port: ptr.To(int32(445))}
				s.Identity = &v1alpha1.IdentitySpec{
					JWT:   &v1alpha1.JWTSpec{SecretRef: userSecret("my-jwt", "token")},
					Admin: &v1alpha1.AdminSpec{PasswordSecretRef: userSecret("my-admin", "pw")},
				}
			}),
			secrets: secretData{
				"my-jwt":            {"token": "a-user-chosen-jwt-secret-of-more-than-32-chars"},
				"my-admin":          {"pw": `Adm1n p@ss:'"$` + "`" + `\!`},
				"from-cert-manager": userCertificate(t, "conf-ports"),
			},
		},
		{
			// Kerberos with SMB on (its adapter loads the Kerberos provider at boot and needs
			// krb5.conf): the keytab and krb5.conf come from a Secret mounted 0440 for the pod's
			// group, and the server seeds its database from the config file.
			name: "kerberos-smb",
			ds: newDittoServer("conf-krb", func(s *v1alpha1.DittoServerSpec) {
				s.SMB = &v1alpha1.SMBSpec{Enabled: true}
				s.Identity = &v1alpha1.IdentitySpec{Kerberos: &v1alpha1.KerberosSpec{
					ServicePrincipal: krbPrincipal, KeytabSecretRef: *userSecret("krb", "nfs.keytab"), NetBIOSDomain: "EXAMPLE"}}
			}),
			secrets: secretData{"krb": {"nfs.keytab": string(dfstest.Keytab(t, krbPrincipal)), "krb5.conf": dfstest.Krb5Conf}},
			check:   checkKerberos,
		},
		{
			// Plain HTTP on purpose.
			name: "api-tls-disabled",
			ds: newDittoServer("conf-plain", func(s *v1alpha1.DittoServerSpec) {
				s.ControlPlane = &v1alpha1.ControlPlaneSpec{TLS: &v1alpha1.APITLSSpec{Mode: v1alpha1.APITLSDisabled}}
			}),
		},
	}
	for _, c := range sqliteCases {
		t.Run(c.name, func(t *testing.T) {
			parallel(t)
			p := preparePod(t, newSandbox(t), c)
			res.add(exercise(t, p))
		})
	}

	// PostgreSQL cases share one sandbox with a real PostgreSQL; they run one after the other
	// because each dfs binds the fixed adapter ports.
	t.Run("postgres", func(t *testing.T) {
		parallel(t)
		sb := newSandbox(t)
		pg := startPostgres(t, sb)
		perconaPassword := randomString(t, 24)
		pg.createLogin(t, uriUser, uriPassword, uriDB)
		pg.createLogin(t, perconaUser, perconaPassword, perconaDB)

		t.Run("postgres-uri-secret", func(t *testing.T) {
			uri := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s", uriUser, percentEncodeAll(uriPassword), pg.port, uriDB)
			ds := newDittoServer("conf-pg", func(s *v1alpha1.DittoServerSpec) {
				s.Database = &v1alpha1.DatabaseSpec{Type: v1alpha1.DatabasePostgres, PostgresSecretRef: userSecret("pg-uri", "uri")}
			})
			p := preparePod(t, sb, podCase{name: "postgres-uri-secret", ds: ds, secrets: secretData{"pg-uri": {"uri": uri}}})
			// The operator-owned Secret holds the decoded password and the pod env reads it.
			pw, _ := p.envValue(specs.EnvPostgresPassword)
			require.Equal(t, uriPassword, pw)
			// A URI without sslmode requires TLS: the real server connects over it.
			mode, _ := p.envValue(specs.EnvPostgresSSLMode)
			require.Equal(t, "require", mode)
			res.add(exercise(t, p))
		})

		t.Run("percona-user-secret", func(t *testing.T) {
			// The Percona user Secret as Percona creates it; the operator's builder maps its keys
			// to the server env (with sslmode require) and adds the wait-for-postgres init
			// container, which runs against the real PostgreSQL before each boot.
			ds := newDittoServer("conf-percona", func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, DatabaseName: perconaDB}
			})
			p := preparePod(t, sb, podCase{
				name: "percona-user-secret", ds: ds,
				secrets: secretData{
					specs.PerconaUserSecretName(ds): perconaUserSecret(pg.port, perconaPassword),
					specs.PerconaCASecretName(ds):   {specs.PerconaCAKey: pg.caPEM, "tls.crt": "not mounted", "tls.key": "not mounted"},
				},
			})
			require.Len(t, p.inits, 1, "a server on Percona waits for PostgreSQL in an init container")
			mode, _ := p.envValue(specs.EnvPostgresSSLMode)
			require.Equal(t, "verify-full", mode, "the cluster's certificate is checked against its CA")
			r := exercise(t, p)
			res.add(r)
			res.add(caseResult{name: "init-wait-reachable", note: fmt.Sprintf("init container %s exit 0 in %s (boot2)", p.inits[0].name, p.initTook.Round(time.Millisecond))})
		})

		t.Run("percona-verify-full-refuses-another-ca", func(t *testing.T) {
			// verify-full is a real check: with a CA that did not sign the server's
			// certificate, DittoFS does not connect (and exits at boot).
			ds := newDittoServer("conf-percona-otherca", func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, DatabaseName: perconaDB}
			})
			other, _, _ := testCertificate(t, "pg-ca")
			p := preparePod(t, sb, podCase{
				name: "percona-verify-full-other-ca", ds: ds,
				secrets: secretData{
					specs.PerconaUserSecretName(ds): perconaUserSecret(pg.port, perconaPassword),
					specs.PerconaCASecretName(ds):   {specs.PerconaCAKey: string(other)},
				},
			})
			code, took := expectBootFailure(t, p, 30*time.Second)
			res.add(caseResult{name: p.name, note: fmt.Sprintf("exits %d after %s (certificate not from the mounted CA)", code, took.Round(time.Millisecond))})
		})

		t.Run("percona-sslmode-require", func(t *testing.T) {
			ds := newDittoServer("conf-percona-require", func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, DatabaseName: perconaDB, SSLMode: "require"}
			})
			p := preparePod(t, sb, podCase{
				name: "percona-sslmode-require", ds: ds,
				secrets: secretData{specs.PerconaUserSecretName(ds): perconaUserSecret(pg.port, perconaPassword)},
			})
			mode, _ := p.envValue(specs.EnvPostgresSSLMode)
			require.Equal(t, "require", mode)
			_, hasCA := p.envValue(specs.EnvPostgresSSLRootCert)
			require.False(t, hasCA, "no CA with require")
			// dfs exits at boot when it cannot connect: Ready and running means connected
			// (same database as percona-user-secret, so no second bootstrap to exercise).
			pr := p.start(t, "boot")
			took := p.waitReady(t, pr)
			p.stop(t, pr)
			res.add(caseResult{name: p.name, note: fmt.Sprintf("connected without a CA (encrypted, unverified), ready in %s", took.Round(time.Millisecond))})
		})

		t.Run("percona-user-secret-without-sslmode-is-refused", func(t *testing.T) {
			// Pins the server fact behind the operator's explicit sslmode: DittoFS defaults
			// sslmode to "disable", which a TLS-only server (every Percona cluster) refuses.
			ds := newDittoServer("conf-percona-nossl", func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, DatabaseName: perconaDB}
			})
			p := preparePod(t, sb, podCase{
				name: "percona-without-sslmode", ds: ds,
				secrets: secretData{
					specs.PerconaUserSecretName(ds): perconaUserSecret(pg.port, perconaPassword),
					specs.PerconaCASecretName(ds):   {specs.PerconaCAKey: pg.caPEM},
				},
				container: withoutEnv(specs.EnvPostgresSSLMode),
			})
			code, took := expectBootFailure(t, p, 30*time.Second)
			res.add(caseResult{name: p.name, note: fmt.Sprintf("exits %d after %s (sslmode defaults to disable; TLS-only server refuses)", code, took.Round(time.Millisecond))})
		})

		t.Run("probes-with-database-down", func(t *testing.T) {
			// Both probes answer 200 while the API listens, even with the DB
			// down (liveness only reports it). Last subtest: it stops PostgreSQL.
			pg.createLogin(t, downUser, downPassword, downDB)
			uri := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", downUser, percentEncodeAll(downPassword), pg.port, downDB)
			ds := newDittoServer("conf-pg-later-down", func(s *v1alpha1.DittoServerSpec) {
				s.Database = &v1alpha1.DatabaseSpec{PostgresSecretRef: userSecret("pg-uri", "uri")}
			})
			p := preparePod(t, sb, podCase{name: "probes-with-database-down", ds: ds, secrets: secretData{"pg-uri": {"uri": uri}}})
			pr := p.start(t, "boot")
			p.waitReady(t, pr)
			pg.stop(t)
			client := p.sb.probeClient(5 * time.Second)
			live, ready := p.probeURL(t, p.container.LivenessProbe), p.probeURL(t, p.container.ReadinessProbe)
			var body string
			require.Eventually(t, func() bool {
				resp, err := client.Get(live)
				if err != nil {
					return false
				}
				defer func() { _ = resp.Body.Close() }()
				b, _ := io.ReadAll(resp.Body)
				body = string(b)
				return resp.StatusCode == 200 && strings.Contains(body, "unreachable")
			}, 15*time.Second, 100*time.Millisecond, "liveness with the DB down: %s", body)
			code, err := httpStatus(client, ready)
			require.NoError(t, err)
			require.Equal(t, 200, code, "readiness with the DB down")
			took := p.stop(t, pr)
			res.add(caseResult{name: p.name, note: fmt.Sprintf("DB stopped after ready: /health 200 (control_plane_db unreachable), /health/ready 200; SIGTERM->exit 0 in %s", took.Round(time.Millisecond))})
		})
	})

	t.Run("postgres-unreachable", func(t *testing.T) {
		parallel(t)
		sb := newSandbox(t)
		port := sb.freePort(t) // nothing listens there
		uri := fmt.Sprintf("postgresql://ditto:%s@127.0.0.1:%d/dittofs?sslmode=disable", url.PathEscape("s3cr3t"), port)
		ds := newDittoServer("conf-pg-down", func(s *v1alpha1.DittoServerSpec) {
			s.Database = &v1alpha1.DatabaseSpec{PostgresSecretRef: userSecret("pg-uri", "uri")}
		})
		p := preparePod(t, sb, podCase{name: "postgres-unreachable", ds: ds, secrets: secretData{"pg-uri": {"uri": uri}}})
		code, took := expectBootFailure(t, p, 30*time.Second)
		res.add(caseResult{name: p.name, note: fmt.Sprintf("exits %d after %s (no retry: the reason for the init wait)", code, took.Round(time.Millisecond))})

		// The init container's wait gives up after its bound.
		script := specs.PostgresWaitScript()
		require.Contains(t, script, "+ "+strconv.Itoa(specs.PostgresWaitTimeoutSeconds)+" ))", "the wait is bounded at %d s", specs.PostgresWaitTimeoutSeconds)
		code, waited, out := waitScript(t, p, specs.PostgresWaitScriptWithTimeout(3), 20*time.Second)
		assert.Equal(t, 1, code, out)
		assert.GreaterOrEqual(t, waited, 3*time.Second, out)
		assert.Less(t, waited, 12*time.Second, out)
		assert.Contains(t, out, "did not accept connections within 3s")
		res.add(caseResult{name: "init-wait-unreachable(3s bound)", note: fmt.Sprintf("exit %d after %s", code, waited.Round(time.Millisecond))})
	})
}

// perconaUserSecret is the user Secret a Percona cluster creates (docs/PERCONA.md).
func perconaUserSecret(port int, password string) map[string]string {
	return map[string]string{
		"host":     "127.0.0.1",
		"port":     strconv.Itoa(port),
		"user":     perconaUser,
		"password": password,
		"dbname":   perconaDB,
		"uri":      fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%d/%s", perconaUser, url.PathEscape(password), port, perconaDB),
	}
}

// TestSandboxCatchesLoopbackBind proves the probes go to the pod IP: a server bound to
// 127.0.0.1 (the DittoFS default, and the upstream operator's bug) answers on loopback only
// and fails them.
func TestSandboxCatchesLoopbackBind(t *testing.T) {
	if !useNetns {
		t.Skipf("needs network namespaces (%s)", fallbackReason)
	}
	t.Parallel()
	p := preparePod(t, newSandbox(t), podCase{name: "loopback-bind", ds: newDittoServer("conf-loopback", nil)})
	p.env = append(p.env, "DITTOFS_CONTROLPLANE_HOST=127.0.0.1")
	pr := p.start(t, "boot")
	client := p.sb.probeClient(2 * time.Second)
	loopback := specs.APIScheme(p.ds) + "://127.0.0.1:" + strconv.Itoa(int(p.ds.Spec.APIPort())) + "/health"
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := httpStatus(client, loopback)
		if err == nil && code == 200 {
			break
		}
		require.True(t, pr.running() && time.Now().Before(deadline), "dfs did not come up on loopback: %v", err)
		time.Sleep(25 * time.Millisecond)
	}
	_, err := httpStatus(client, p.probeURL(t, p.container.StartupProbe))
	require.Error(t, err, "the startup probe must not reach a loopback-bound server")
	p.stop(t, pr)
}

// userCertificate is a certificate Secret as cert-manager makes it (tls.crt, tls.key, ca.crt)
// for the server named name, from a CA of its own.
func userCertificate(t *testing.T, name string) map[string]string {
	ca, cert, key := testCertificate(t, name)
	return map[string]string{specs.APITLSCert: string(cert), specs.APITLSKey: string(key), specs.APITLSCAKey: string(ca)}
}

// TestAPICertificateIsVerified: the real server presents the operator-issued certificate, and a
// client that trusts another CA, or expects another server's name, is refused: the check the
// operator's client relies on is a real one.
func TestAPICertificateIsVerified(t *testing.T) {
	parallel(t)
	p := preparePod(t, newSandbox(t), podCase{name: "api-tls-verified", ds: newDittoServer("conf-verify", nil)})
	pr := p.start(t, "boot")
	defer p.stop(t, pr)
	p.waitReady(t, pr)
	url := specs.APIScheme(p.ds) + "://" + net.JoinHostPort(p.sb.podIP, strconv.Itoa(int(p.ds.Spec.APIPort()))) + "/health"
	require.Equal(t, "https", specs.APIScheme(p.ds), "TLS is the default")

	trusts := func(caPEM string, name string) error {
		roots := x509.NewCertPool()
		require.True(t, roots.AppendCertsFromPEM([]byte(caPEM)))
		_, err := httpStatus(p.sb.tlsClient(5*time.Second, &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}), url)
		return err
	}
	own := p.secrets[specs.APITLSSecretName(p.ds)][specs.APITLSCAKey]
	require.NoError(t, trusts(own, specs.APIServerName(p.ds)), "the operator's CA and name")
	other := userCertificate(t, "conf-verify")[specs.APITLSCAKey]
	assert.ErrorContains(t, trusts(other, specs.APIServerName(p.ds)), "certificate signed by unknown authority")
	assert.ErrorContains(t, trusts(own, "someone-else-api.default.svc"), "not someone-else-api.default.svc")
	code, err := httpStatus(p.sb.httpClient(5*time.Second), "http://"+net.JoinHostPort(p.sb.podIP, strconv.Itoa(int(p.ds.Spec.APIPort())))+"/health")
	assert.True(t, err != nil || code == http.StatusBadRequest, "no plain HTTP next to HTTPS (status %d, %v)", code, err)

	// The operator's renewal (same CA, new certificate) lands in the mounted files as the
	// kubelet writes a Secret update: the running server serves it, no restart.
	served := func() string {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM([]byte(own))
		var serial string
		c := p.sb.tlsClient(5*time.Second, &tls.Config{RootCAs: roots, ServerName: specs.APIServerName(p.ds), MinVersion: tls.VersionTLS12,
			VerifyConnection: func(cs tls.ConnectionState) error { serial = cs.PeerCertificates[0].SerialNumber.String(); return nil }})
		_, err := httpStatus(c, url)
		require.NoError(t, err)
		return serial
	}
	before := served()
	data := p.secrets[specs.APITLSSecretName(p.ds)]
	cert, key, err := specs.IssueAPICertificate(p.ds, "cluster.local", []byte(data[specs.APITLSCAKey]), []byte(data[specs.APITLSCAKeyPK]), time.Now())
	require.NoError(t, err)
	dir := p.mounts[specs.APITLSMountPath]
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key.new"), key, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.crt.new"), cert, 0o644))
	require.NoError(t, os.Rename(filepath.Join(dir, "tls.key.new"), filepath.Join(dir, specs.APITLSKey)))
	require.NoError(t, os.Rename(filepath.Join(dir, "tls.crt.new"), filepath.Join(dir, specs.APITLSCert)))
	require.Eventually(t, func() bool { return served() != before }, 10*time.Second, 100*time.Millisecond, "the renewed certificate is served")
	require.True(t, pr.running(), "without a restart")
}

const krbPrincipal = "nfs/files.example.com@EXAMPLE.COM"

// checkKerberos: the settings DittoFS stored are the spec's, and the server loads the mounted
// keytab (as the pod's user, through the group) and krb5.conf with them.
func checkKerberos(t *testing.T, p *pod, a *api) {
	var stored map[string]any
	a.call("GET", "/api/v1/identity-providers/kerberos/config", nil, &stored, 200)
	assert.Equal(t, true, stored["enabled"])
	assert.Equal(t, krbPrincipal, stored["service_principal"])
	assert.Equal(t, "EXAMPLE.COM", stored["realm"])
	assert.Equal(t, "EXAMPLE", stored["netbios_domain"])
	var res struct {
		OK      bool   `json:"ok"`
		Message string `json:"message"`
	}
	a.call("POST", "/api/v1/identity-providers/kerberos/test", stored, &res, 200)
	assert.True(t, res.OK, "the server loads its keytab: %s", res.Message)
	assert.Contains(t, res.Message, "1 entries")
}
