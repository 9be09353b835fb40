//go:build linux

package conformance

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

// pgServer is a real PostgreSQL the test starts in a sandbox, as an unprivileged user, on a free
// 127.0.0.1 port, with TLS (like a Percona cluster) and SCRAM passwords.
type pgServer struct {
	bin     string
	base    string
	sockDir string
	port    int
	user    runAs
	proc    *proc
	// caPEM is the CA of the server's certificate (as Percona keeps it in
	// <cluster>-cluster-cert, key ca.crt).
	caPEM string
}

// postgresBinDir finds the server binaries of Debian's postgresql package (highest version).
func postgresBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CONFORMANCE_PG_BINDIR"); d != "" {
		return d
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install Debian's postgresql package (apt-get install -y postgresql) or set CONFORMANCE_PG_BINDIR")
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	return filepath.Dir(matches[0])
}

// postgresUser is the unprivileged account PostgreSQL runs as (it refuses root).
func postgresUser(t testing.TB) runAs {
	t.Helper()
	if os.Geteuid() != 0 {
		return runAs{}
	}
	require.NotEmpty(t, setprivBin, "setpriv is needed to run PostgreSQL as an unprivileged user")
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.ParseInt(u.Uid, 10, 64)
		gid, _ := strconv.ParseInt(u.Gid, 10, 64)
		return runAs{switchUser: true, uid: uid, gid: gid}
	}
	t.Fatal("no unprivileged user (postgres, nobody) to run PostgreSQL as")
	return runAs{}
}

func startPostgres(t *testing.T, sb *sandbox) *pgServer {
	t.Helper()
	start := time.Now()
	pg := &pgServer{bin: postgresBinDir(t), user: postgresUser(t)}
	var err error
	pg.base, err = os.MkdirTemp("", "dfs-conformance-pg-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(pg.base, 0o711))
	t.Cleanup(func() { _ = os.RemoveAll(pg.base) })
	data := filepath.Join(pg.base, "data")
	pg.sockDir = filepath.Join(pg.base, "sock")
	for _, d := range []string{data, pg.sockDir} {
		require.NoError(t, os.Mkdir(d, 0o700))
		pg.chown(t, d)
	}
	env := []string{"PATH=" + pg.bin + ":/usr/bin:/bin", "LANG=C", "LC_ALL=C"}

	initdb := sb.command(pg.user, env, filepath.Join(pg.bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C")
	var out bytes.Buffer
	initdb.Stdout, initdb.Stderr = &out, &out
	require.NoError(t, runBounded(initdb, 60*time.Second), "initdb: %s", out.String())

	// TLS like a Percona cluster: a certificate from a CA of the cluster's, naming the address
	// DittoFS connects to (127.0.0.1 here, the primary Service on Percona), so that both
	// sslmode=require and verify-full (with the CA) connect.
	crt, key := filepath.Join(data, "server.crt"), filepath.Join(data, "server.key")
	caPEM, certPEM, keyPEM := testCertificate(t, "pg-ca")
	pg.caPEM = string(caPEM)
	require.NoError(t, os.WriteFile(crt, certPEM, 0o600))
	require.NoError(t, os.WriteFile(key, keyPEM, 0o600))
	for _, f := range []string{crt, key} {
		pg.chown(t, f)
	}
	// Who may connect how: the Percona-shaped user only over TLS (as on a Percona cluster), the
	// other users either way.
	hba := "local all all trust\n" +
		"hostssl " + perconaDB + " " + perconaUser + " 127.0.0.1/32 scram-sha-256\n" +
		"host " + uriDB + " " + uriUser + " 127.0.0.1/32 scram-sha-256\n" +
		"host " + downDB + " " + downUser + " 127.0.0.1/32 scram-sha-256\n"
	require.NoError(t, os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600))
	pg.chown(t, filepath.Join(data, "pg_hba.conf"))

	pg.port = sb.freePort(t)
	cmd := sb.command(pg.user, env, filepath.Join(pg.bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(pg.port),
		"-c", "unix_socket_directories="+pg.sockDir,
		"-c", "ssl=on", "-c", "ssl_cert_file="+crt, "-c", "ssl_key_file="+key,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB", "-c", "max_connections=80", "-c", "log_min_messages=warning")
	pg.proc = startProc(t, "postgres", cmd, filepath.Join(pg.base, "postgres.log"))
	t.Cleanup(func() { pg.stop(t) })

	isready := filepath.Join(pg.bin, "pg_isready")
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command(isready, "-q", "-h", pg.sockDir, "-p", strconv.Itoa(pg.port), "-U", "postgres").Run() != nil {
		require.True(t, pg.proc.running(), "postgres exited:\n%s", pg.proc.logTail(20))
		require.True(t, time.Now().Before(deadline), "PostgreSQL did not start within 30s:\n%s", pg.proc.logTail(20))
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("PostgreSQL %s ready on 127.0.0.1:%d (TLS on) in %s, running as %s",
		filepath.Base(filepath.Dir(pg.bin)), pg.port, time.Since(start).Round(time.Millisecond), pg.user)
	return pg
}

// stop shuts PostgreSQL down (fast shutdown); startProc's cleanup kills it by PID if this
// times out.
func (pg *pgServer) stop(t testing.TB) {
	if pg.proc.running() {
		_ = pg.proc.cmd.Process.Signal(syscall.SIGINT)
		if _, done := pg.proc.wait(10 * time.Second); !done {
			t.Logf("PostgreSQL did not stop within 10s; killing it")
		}
	}
}

func (pg *pgServer) chown(t testing.TB, path string) {
	if pg.user.switchUser {
		require.NoError(t, os.Chown(path, int(pg.user.uid), int(pg.user.gid)))
	}
}

// sql runs statements one by one as the superuser over the Unix socket.
func (pg *pgServer) sql(t testing.TB, statements ...string) {
	t.Helper()
	args := []string{"-h", pg.sockDir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1"}
	for _, s := range statements {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(pg.bin, "psql"), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGCONNECT_TIMEOUT=5"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, runBounded(cmd, 30*time.Second), "psql: %s", out.String())
}

// sqlLiteral quotes s as a standard SQL string literal.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// createLogin creates a login role and a database it owns.
func (pg *pgServer) createLogin(t testing.TB, role, password, db string) {
	t.Helper()
	pg.sql(t,
		fmt.Sprintf("CREATE ROLE %q LOGIN PASSWORD %s", role, sqlLiteral(password)),
		fmt.Sprintf("CREATE DATABASE %q OWNER %q", db, role),
	)
}

// percentEncodeAll percent-encodes every byte outside the RFC 3986 unreserved set, the way a
// careful user writes a password into a URI.
func percentEncodeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// testCertificate is a fresh CA and a serving certificate it signed for the API of server name
// (the operator's own issuing code), which also names 127.0.0.1.
func testCertificate(t testing.TB, name string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	ds := newDittoServer(name, nil)
	now := time.Now()
	caPEM, caKey, err := specs.IssueAPICA(ds, now)
	require.NoError(t, err)
	certPEM, keyPEM, err = specs.IssueAPICertificate(ds, "cluster.local", caPEM, caKey, now)
	require.NoError(t, err)
	return caPEM, certPEM, keyPEM
}
