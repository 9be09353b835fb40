package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePostgresURI(t *testing.T) {
	tests := map[string]struct {
		uri     string
		want    map[string]string
		wantErr string
	}{
		"full": {
			uri: "postgres://dittofs:p%40ss%3Aw%2Ford@db.example.svc:6432/ditto?sslmode=require",
			want: map[string]string{"host": "db.example.svc", "port": "6432", "database": "ditto",
				"user": "dittofs", "password": "p@ss:w/ord", "sslmode": "require"},
		},
		"defaults for port and sslmode (encrypted unless the URI says otherwise)": {
			uri:  "postgresql://u:p@h/db",
			want: map[string]string{"host": "h", "port": "5432", "database": "db", "user": "u", "password": "p", "sslmode": "require"},
		},
		"surrounding whitespace from a file-made Secret": {
			uri:  "postgres://u:p@h:5432/db\n",
			want: map[string]string{"host": "h", "port": "5432", "database": "db", "user": "u", "password": "p", "sslmode": "require"},
		},
		"key=value DSN": {uri: "host=h user=u password=secret dbname=d", wantErr: "scheme"},
		"no host":       {uri: "postgres://u:p@/db", wantErr: "host"},
		"no user":       {uri: "postgres://h:5432/db", wantErr: "user"},
		"no database":   {uri: "postgres://u:p@h:5432/", wantErr: "database"},
		"unparseable":   {uri: "postgres://u:p@h:port/db", wantErr: "does not parse"},
		"mysql":         {uri: "mysql://u:p@h/db", wantErr: "scheme"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePostgresURI(tc.uri)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "secret", "never echo the password")
				assert.NotContains(t, err.Error(), ":p@", "never echo the URI")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
