package specs

import (
	"fmt"
	"strings"
)

// PostgresWaitTimeoutSeconds bounds the init container's wait for PostgreSQL. DittoFS v0.29.0
// exits 1 when PostgreSQL is unreachable at boot and never retries, so a
// server on PostgreSQL waits for the database before it starts.
const PostgresWaitTimeoutSeconds = 300

// PostgresWaitScript is the sh script of the init container that waits for PostgreSQL. It reads
// the host and port from the same env the server reads (DITTOFS_DATABASE_POSTGRES_HOST and
// DITTOFS_DATABASE_POSTGRES_PORT, default 5432), runs pg_isready until the server accepts
// connections, and exits 1 after PostgresWaitTimeoutSeconds (or at once on invalid parameters).
// The deadline is compared with "greater than": date +%s counts whole seconds, so "greater or
// equal" gave up up to a second early.
// It needs only a POSIX sh, date and pg_isready. The user name is passed explicitly (from
// DITTOFS_DATABASE_POSTGRES_USER, else "postgres"): the pod runs as uid 65532, which has no
// passwd entry in a PostgreSQL image, and pg_isready without -U then answers "no attempt"
// (exit 3) without contacting the server (verified with PostgreSQL 15).
func PostgresWaitScript() string { return PostgresWaitScriptWithTimeout(PostgresWaitTimeoutSeconds) }

// PostgresWaitScriptWithTimeout is PostgresWaitScript with another bound (tests use short ones).
func PostgresWaitScriptWithTimeout(seconds int) string {
	if seconds < 1 {
		seconds = 1
	}
	script := `set -u
host="${__HOST__:-}"
port="${__PORT__:-5432}"
user="${__USER__:-postgres}"
if [ -z "$host" ]; then
  echo "__HOST__ is not set" >&2
  exit 1
fi
deadline=$(( $(date +%s) + __TIMEOUT__ ))
while :; do
  pg_isready -q -h "$host" -p "$port" -U "$user" -t 3
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "PostgreSQL at $host:$port accepts connections"
    exit 0
  fi
  if [ "$rc" -eq 3 ]; then
    echo "pg_isready: invalid parameters for $host:$port" >&2
    exit 1
  fi
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "PostgreSQL at $host:$port did not accept connections within __TIMEOUT__s (pg_isready exit $rc)" >&2
    exit 1
  fi
  echo "waiting for PostgreSQL at $host:$port (pg_isready exit $rc)" >&2
  sleep 2
done
`
	return strings.NewReplacer(
		"__HOST__", EnvPostgresHost,
		"__PORT__", EnvPostgresPort,
		"__USER__", EnvPostgresUser,
		"__TIMEOUT__", fmt.Sprint(seconds),
	).Replace(script)
}
