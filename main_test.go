package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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

// TestVersion: the binary knows its release version (VERSION, embedded), says it with
// --version and in dittofs_operator_build_info.
func TestVersion(t *testing.T) {
	file, err := os.ReadFile("VERSION")
	require.NoError(t, err)
	want := strings.TrimSpace(string(file))
	require.Regexp(t, `^[0-9]+\.[0-9]+\.[0-9]+$`, want)
	assert.Equal(t, want, Version())
	assert.True(t, strings.HasPrefix(versionLine(), "dittofs-operator "+want+" (commit "), versionLine())

	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(buildInfo()))
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	m := families[0].GetMetric()[0]
	assert.Equal(t, "dittofs_operator_build_info", families[0].GetName())
	assert.InDelta(t, 1, m.GetGauge().GetValue(), 0)
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	assert.Equal(t, want, labels["version"])
	assert.NotEmpty(t, labels["commit"])
	assert.Equal(t, runtime.Version(), labels["go_version"])
}
