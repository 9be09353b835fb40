package specs

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// UsesPostgres reports whether the server runs on PostgreSQL: Percona, a postgresSecretRef
// (which wins over type sqlite), or type postgres.
func UsesPostgres(s *v1alpha1.DittoServerSpec) bool {
	if s.PerconaEnabled() {
		return true
	}
	if s.Database == nil {
		return false
	}
	return s.Database.PostgresSecretRef != nil || s.Database.Type == v1alpha1.DatabasePostgres
}

// PostgresEnvKeys maps each PostgreSQL env var to the key of the operator's <name>-db-credentials
// Secret it is read from.
var PostgresEnvKeys = []struct{ Env, Key string }{
	{EnvPostgresHost, "host"},
	{EnvPostgresPort, "port"},
	{EnvPostgresDatabase, "database"},
	{EnvPostgresUser, "user"},
	{EnvPostgresPassword, "password"},
	{EnvPostgresSSLMode, "sslmode"},
}

// DefaultPostgresSSLMode is the sslmode of a PostgreSQL URI that sets none.
const DefaultPostgresSSLMode = "require"

// ParsePostgresURI splits a postgres:// URI into the discrete settings DittoFS reads (keys of
// PostgresEnvKeys). DittoFS v0.29.0 reads no URI or DSN, only DITTOFS_DATABASE_POSTGRES_*.
func ParsePostgresURI(raw string) (map[string]string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse echoes the input, which holds the password: report only the kind of error.
		return nil, fmt.Errorf("the URI does not parse")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("scheme must be postgres:// or postgresql://")
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("the host is missing")
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("the user is missing")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return nil, fmt.Errorf("the database name is missing")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	password, _ := u.User.Password()
	sslmode := u.Query().Get("sslmode")
	if sslmode == "" {
		// Encrypted unless the URI says otherwise: "prefer" (libpq's default) falls back to
		// plain text without a word when the server offers no TLS. A server without TLS needs
		// ?sslmode=disable in the URI.
		sslmode = DefaultPostgresSSLMode
	}
	return map[string]string{
		"host": u.Hostname(), "port": port, "database": db,
		"user": u.User.Username(), "password": password, "sslmode": sslmode,
	}, nil
}
