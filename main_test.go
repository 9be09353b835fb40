package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The seed enabled its webhook by default without certificates and crash-looped on every
// install. In auto mode the webhook is served only when certificates are present.
func TestWebhooksEnabled(t *testing.T) {
	empty := t.TempDir()
	withCerts := t.TempDir()
	for _, f := range []string{"tls.crt", "tls.key"} {
		require.NoError(t, os.WriteFile(filepath.Join(withCerts, f), []byte("x"), 0o600))
	}
	tests := []struct {
		mode, dir string
		want      bool
		wantErr   bool
	}{
		{"auto", empty, false, false},
		{"", filepath.Join(empty, "missing"), false, false},
		{"auto", withCerts, true, false},
		{"false", withCerts, false, false},
		{"TRUE", empty, true, false},
		{"sometimes", empty, false, true},
	}
	for _, tc := range tests {
		got, err := webhooksEnabled(tc.mode, tc.dir)
		if tc.wantErr {
			assert.Error(t, err, tc.mode)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "mode %q dir %s", tc.mode, tc.dir)
	}
}

func TestWatchNamespaces(t *testing.T) {
	t.Setenv("WATCH_NAMESPACE", "")
	assert.Empty(t, watchNamespaces())
	t.Setenv("WATCH_NAMESPACE", "a, b,,c")
	assert.Equal(t, []string{"a", "b", "c"}, watchNamespaces())
}
