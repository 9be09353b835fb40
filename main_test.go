package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
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

// TestMetricsCertificate: --metrics-cert-dir serves the given certificate, which a scraper
// verifies with its CA (no insecureSkipVerify), and a renewed certificate without a restart;
// a directory without the files, or with plain HTTP, is refused instead of silently falling
// back to a self-signed certificate.
func TestMetricsCertificate(t *testing.T) {
	dir := t.TempDir()
	ca1 := writeServingCert(t, dir, "metrics.dittofs-operator-system.svc")
	o := runOptions{metricsAddr: "127.0.0.1:0", secureMetrics: true, metricsCertDir: dir, metricsCertName: "tls.crt", metricsCertKey: "tls.key"}
	opts, err := metricsOptions(o)
	require.NoError(t, err)
	require.NotNil(t, opts.FilterProvider, "authn/authz stays on")
	opts.FilterProvider = nil // this test has no API server to review tokens
	srv, err := metricsserver.NewServer(opts, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	}()

	addr := func() string { return srv.(interface{ GetBindAddr() string }).GetBindAddr() }
	require.Eventually(t, func() bool { return addr() != "" }, 5*time.Second, 10*time.Millisecond)
	verifies := func(ca *x509.CertPool) error {
		conn, err := tls.Dial("tcp", addr(), &tls.Config{RootCAs: ca, ServerName: "metrics.dittofs-operator-system.svc", MinVersion: tls.VersionTLS12})
		if err != nil {
			return err
		}
		return conn.Close()
	}
	require.Eventually(t, func() bool { return verifies(ca1) == nil }, 5*time.Second, 20*time.Millisecond, "the scraper verifies the certificate with its CA")

	ca2 := writeServingCert(t, dir, "metrics.dittofs-operator-system.svc") // cert-manager renews it
	require.Eventually(t, func() bool { return verifies(ca2) == nil }, 10*time.Second, 50*time.Millisecond, "the renewed certificate is served without a restart")
	assert.Error(t, verifies(ca1), "the old certificate is gone")

	_, err = metricsOptions(runOptions{secureMetrics: true, metricsCertDir: t.TempDir(), metricsCertName: "tls.crt", metricsCertKey: "tls.key"})
	assert.ErrorContains(t, err, "--metrics-cert-dir=")
	_, err = metricsOptions(runOptions{secureMetrics: false, metricsCertDir: dir, metricsCertName: "tls.crt", metricsCertKey: "tls.key"})
	assert.ErrorContains(t, err, "plain HTTP")
	plain, err := metricsOptions(runOptions{secureMetrics: true})
	require.NoError(t, err)
	assert.Empty(t, plain.CertDir, "no directory: controller-runtime's self-signed certificate")
}

// writeServingCert writes a fresh CA-signed certificate for host as tls.crt/tls.key in dir
// and returns the CA.
func writeServingCert(t *testing.T, dir, host string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	// Key first, then certificate, as a renewal lands: the watcher reloads on each write.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// TestOverrideValuesSources: operator-wide override values come from a mounted file (a
// ConfigMap key) and the env DITTOFS_OVERRIDE_VALUES, which wins; anything but a map of
// scalar values is refused with the source named.
func TestOverrideValuesSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("chartValues.labels.team: storage\nchartValues.labels.tier: gold\nreplicas: 1\n"), 0o600))
	got, err := overrideValues(file, "{chartValues.labels.tier: silver}")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"chartValues.labels.team": "storage", "chartValues.labels.tier": "silver", "replicas": "1"}, got)

	got, err = overrideValues("", "")
	require.NoError(t, err)
	assert.Empty(t, got)

	_, err = overrideValues(filepath.Join(t.TempDir(), "missing.yaml"), "")
	assert.ErrorContains(t, err, "--override-values-file")
	_, err = overrideValues("", "chartValues: {labels: {team: storage}}")
	assert.ErrorContains(t, err, `DITTOFS_OVERRIDE_VALUES: "chartValues": values are strings (use a dotted key`)
	_, err = overrideValues("", "[not, a, map]")
	assert.ErrorContains(t, err, "DITTOFS_OVERRIDE_VALUES: not a YAML map")
}

// TestSoftLimit: the Go runtime's soft memory limit follows the container's limit (the shipped
// Deployment's 256Mi gives 192 MiB); without a limit there is none.
func TestSoftLimit(t *testing.T) {
	for content, want := range map[string]int64{
		"268435456\n":           201326592, // 256Mi
		"1073741824":            805306368,
		"max\n":                 0, // cgroup v2 without a limit
		"9223372036854771712\n": 0, // cgroup v1 without a limit
		"":                      0,
		"garbage":               0,
		"0":                     0,
	} {
		assert.Equal(t, want, softLimit(content), "%q", content)
	}
}
