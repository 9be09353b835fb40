//go:build linux

package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// keySet is the key paths of a config tree: leaves, every node, and "open" nodes (empty maps in
// the reference, i.e. map-typed settings whose keys are free).
type keySet struct {
	leaves, nodes, open map[string]bool
}

func collectKeys(tree map[string]any) keySet {
	ks := keySet{leaves: map[string]bool{}, nodes: map[string]bool{}, open: map[string]bool{}}
	var walk func(node any, path string)
	walk = func(node any, path string) {
		if path != "" {
			ks.nodes[path] = true
		}
		m, ok := node.(map[string]any)
		if !ok {
			ks.leaves[path] = true
			return
		}
		if len(m) == 0 && path != "" {
			ks.open[path] = true
			return
		}
		for k, v := range m {
			walk(v, joinKey(path, k))
		}
	}
	walk(tree, "")
	return ks
}

// unknownKeys returns the emitted key paths the reference does not know.
func unknownKeys(emitted map[string]any, ref keySet) []string {
	var bad []string
	em := collectKeys(emitted)
	for path := range em.leaves {
		if ref.leaves[path] || underOpen(path, ref) {
			continue
		}
		bad = append(bad, path)
	}
	for path := range em.open { // an empty map is fine wherever the reference has a node
		if !ref.nodes[path] && !underOpen(path, ref) {
			bad = append(bad, path)
		}
	}
	sort.Strings(bad)
	return bad
}

func underOpen(path string, ref keySet) bool {
	for o := range ref.open {
		if strings.HasPrefix(path, o+".") {
			return true
		}
	}
	return false
}

var (
	refOnce sync.Once
	refKeys keySet
	refErr  error
)

// referenceKeys are the keys `dfs config show -o json` reports for v0.29.0 (built-in defaults,
// no config file, clean env).
func referenceKeys(t testing.TB) keySet {
	t.Helper()
	refOnce.Do(func() {
		home, err := os.MkdirTemp("", "dfs-conformance-show-")
		if err != nil {
			refErr = err
			return
		}
		defer func() { _ = os.RemoveAll(home) }()
		cmd := exec.Command(dfsBin, "config", "show", "-o", "json")
		cmd.Env = []string{"PATH=" + imagePath, "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "xdg")}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := runBounded(cmd, 30*time.Second); err != nil {
			refErr = fmt.Errorf("dfs config show -o json: %w: %s", err, stderr.String())
			return
		}
		var tree map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &tree); err != nil {
			refErr = fmt.Errorf("dfs config show -o json is not JSON: %w", err)
			return
		}
		refKeys = collectKeys(tree)
	})
	require.NoError(t, refErr)
	return refKeys
}

// requiredKeysPresent checks the keys the pod cannot work without (docs/ARCHITECTURE.md, "The DittoFS contract"): the API
// bind (else it listens on 127.0.0.1:8080, out of reach of Services and probes), the log output
// (else a file under $HOME), the database type, and for SQLite the database path (else an
// ephemeral file that loses every store and share on restart); the metrics bind when enabled.
func requiredKeysPresent(tree map[string]any) error {
	required := []string{"controlplane.host", "controlplane.port", "logging.output", "database.type"}
	if t, _ := lookup(tree, "database.type"); t == nil || fmt.Sprint(t) == v1alpha1.DatabaseSQLite {
		required = append(required, "database.sqlite.path")
	}
	if e, _ := lookup(tree, "metrics.enabled"); fmt.Sprint(e) == "true" {
		required = append(required, "metrics.host", "metrics.port")
	}
	var missing []string
	for _, k := range required {
		if _, ok := lookup(tree, k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the rendered config lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// renderFacts checks the values the DittoFS contract requires in the ConfigMap, and the Secrets it must never hold.
func renderFacts(tree map[string]any, ds *v1alpha1.DittoServer) []string {
	var bad []string
	want := func(path, value string) {
		v, ok := lookup(tree, path)
		if !ok || fmt.Sprint(v) != value {
			bad = append(bad, fmt.Sprintf("%s = %v, want %s", path, v, value))
		}
	}
	want("controlplane.host", "0.0.0.0")
	want("controlplane.port", fmt.Sprint(ds.Spec.APIPort()))
	want("logging.output", "stdout")
	want("controlplane.require_initial_password_change", "false")
	if specs.UsesPostgres(&ds.Spec) {
		want("database.type", v1alpha1.DatabasePostgres)
	} else {
		want("database.type", v1alpha1.DatabaseSQLite)
		if v, _ := lookup(tree, "database.sqlite.path"); !strings.HasPrefix(fmt.Sprint(v), specs.ControlPlaneMountPath+"/") {
			bad = append(bad, fmt.Sprintf("database.sqlite.path = %v is not on the controlplane volume", v))
		}
	}
	if ds.Spec.MetricsEnabled() {
		want("metrics.enabled", "true")
		want("metrics.host", "0.0.0.0")
		want("metrics.port", fmt.Sprint(ds.Spec.MetricsPort()))
	}
	for _, secret := range []string{"controlplane.secret", "controlplane.jwt.secret", "database.postgres.password", "database.postgres.user", "admin.password", "admin.password_hash"} {
		if _, ok := lookup(tree, secret); ok {
			bad = append(bad, secret+" must never be in the ConfigMap (it reaches the pod from its Secret, as env)")
		}
	}
	return bad
}

func chartValues(t testing.TB, v map[string]any) *apiextensionsv1.JSON {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return &apiextensionsv1.JSON{Raw: b}
}

// keyContractSpecs is the table of specs whose rendered configs must stay within the keys
// DittoFS v0.29.0 knows.
func keyContractSpecs(t testing.TB) map[string]*v1alpha1.DittoServer {
	return map[string]*v1alpha1.DittoServer{
		"default": newDittoServer("k-default", nil),
		"metrics": newDittoServer("k-metrics", func(s *v1alpha1.DittoServerSpec) {
			s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 9191}
		}),
		"postgres": newDittoServer("k-postgres", func(s *v1alpha1.DittoServerSpec) {
			s.Database = &v1alpha1.DatabaseSpec{Type: v1alpha1.DatabasePostgres, PostgresSecretRef: userSecret("pg", "uri")}
		}),
		"percona": newDittoServer("k-percona", func(s *v1alpha1.DittoServerSpec) {
			s.Percona = &v1alpha1.PerconaSpec{Enabled: true}
		}),
		"custom-ports": newDittoServer("k-ports", func(s *v1alpha1.DittoServerSpec) {
			s.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 9000}
			s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 9100}
			s.NFSPort = ptr.To(int32(2049))
			s.SMB = &v1alpha1.SMBSpec{Enabled: true, Port: ptr.To(int32(445))}
			s.Database = &v1alpha1.DatabaseSpec{SQLite: &v1alpha1.SQLiteSpec{Path: "/data/controlplane/sub/cp.db"}}
			s.Identity = &v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTSpec{AccessTokenDuration: "30m", RefreshTokenDuration: "24h"}}
		}),
		"chart-values-extra-config": newDittoServer("k-extra", func(s *v1alpha1.DittoServerSpec) {
			s.ChartValues = chartValues(t, map[string]any{"config": map[string]any{
				"gc":      map[string]any{"auto_enabled": false, "auto_interval": "30m", "grace_period": "2h"},
				"logging": map[string]any{"level": "DEBUG", "format": "text"},
				"controlplane": map[string]any{
					"read_timeout": "30s", "write_timeout": "30s",
				},
				"blockstore": map[string]any{"local": map[string]any{"backpressure_max_wait": "30s"}},
				"metadata":   map[string]any{"badger": map[string]any{"block_cache_mb": 64}},
				"snapshot":   map[string]any{"scheduler_disabled": true},
			}})
		}),
	}
}

// offlineValidate runs `dfs config validate` on a config with a minimal pod-like env.
func offlineValidate(t testing.TB, configYAML string, env []string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(configYAML), 0o644))
	cmd := exec.Command(dfsBin, "config", "validate", "--config", path)
	cmd.Env = append([]string{"PATH=" + imagePath, "HOME=" + dir}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := 0
	if err := runBounded(cmd, 30*time.Second); err != nil {
		code = -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}
	return out.String(), code
}

// offlineEnv is the env a rendered config needs to validate: the JWT secret, and PostgreSQL
// settings for PostgreSQL servers.
func offlineEnv(ds *v1alpha1.DittoServer) []string {
	env := []string{specs.EnvJWTSecret + "=" + strings.Repeat("j", 48), specs.EnvAdminPassword + "=pw"}
	if specs.UsesPostgres(&ds.Spec) {
		env = append(env, specs.EnvPostgresHost+"=db.example", specs.EnvPostgresPort+"=5432",
			specs.EnvPostgresDatabase+"=dittofs", specs.EnvPostgresUser+"=dittofs", specs.EnvPostgresPassword+"=pw")
	}
	return env
}

// mapConfigToTemp rewrites the pod paths of a config onto a temp dir (validate is offline, but
// keep it from touching the machine's /data).
func mapConfigToTemp(t testing.TB, cfg string) string {
	dir := t.TempDir()
	out, _, err := rewriteConfigPaths(cfg, func(p string) (string, bool) {
		for _, m := range []string{specs.ControlPlaneMountPath, specs.MetadataMountPath, specs.CacheMountPath, specs.ContentMountPath, specs.TmpMountPath, specs.APITLSMountPath, specs.MetricsTokenMountPath} {
			if p == m || strings.HasPrefix(p, m+"/") {
				return filepath.Join(dir, p), true
			}
		}
		return "", false
	})
	require.NoError(t, err)
	return out
}

func TestConfigKeyContract(t *testing.T) {
	ref := referenceKeys(t)
	require.True(t, ref.leaves["controlplane.host"] && ref.leaves["database.sqlite.path"], "dfs config show lacks basic keys")
	for name, ds := range keyContractSpecs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rendered, err := operatorRenderer(t).Render(ds)
			require.NoError(t, err)
			cfg, err := rendered.ConfigYAML()
			require.NoError(t, err)
			tree, err := parseConfig(cfg)
			require.NoError(t, err)

			emitted := collectKeys(tree)
			t.Logf("%d key paths emitted, all known to dfs %s", len(emitted.leaves), DittoFSVersion)
			assert.Empty(t, unknownKeys(tree, ref), "keys DittoFS %s does not know (dfs config show -o json)", DittoFSVersion)
			assert.NoError(t, requiredKeysPresent(tree))
			assert.Empty(t, renderFacts(tree, ds))
			out, code := offlineValidate(t, mapConfigToTemp(t, cfg), offlineEnv(ds))
			assert.NoError(t, validateOutputOK(out, code))
		})
	}
}

// TestKeyContractCatchesRegressions proves the checks above fail when the chart regresses.
func TestKeyContractCatchesRegressions(t *testing.T) {
	ref := referenceKeys(t)
	rendered, err := operatorRenderer(t).Render(newDittoServer("k-neg", nil))
	require.NoError(t, err)
	cfg, err := rendered.ConfigYAML()
	require.NoError(t, err)

	t.Run("removed required keys", func(t *testing.T) {
		for _, key := range []string{"controlplane.host", "controlplane.port", "logging.output", "database.type", "database.sqlite.path"} {
			tree, err := parseConfig(cfg)
			require.NoError(t, err)
			require.NoError(t, requiredKeysPresent(tree))
			deleteKey(tree, key)
			err = requiredKeysPresent(tree)
			require.Error(t, err, "deleting %s must fail the check", key)
			assert.Contains(t, err.Error(), key)
		}
	})

	t.Run("loopback bind", func(t *testing.T) {
		tree, err := parseConfig(cfg)
		require.NoError(t, err)
		tree["controlplane"].(map[string]any)["host"] = "127.0.0.1"
		assert.NotEmpty(t, renderFacts(tree, newDittoServer("k-neg", nil)))
	})

	t.Run("unknown keys", func(t *testing.T) {
		// The chart schema constrains only the top-level sections, so chartValues can add a
		// nested key DittoFS does not know; the key contract (and dfs's own warning) catch it.
		ds := newDittoServer("k-typo", func(s *v1alpha1.DittoServerSpec) {
			s.ChartValues = chartValues(t, map[string]any{"config": map[string]any{
				"controlplane": map[string]any{"jwt": map[string]any{"issuer": "dittofs"}},
				"gc":           map[string]any{"auto_enable": false},
			}})
		})
		rendered, err := operatorRenderer(t).Render(ds)
		require.NoError(t, err, "the chart schema accepts nested unknown keys")
		typoCfg, err := rendered.ConfigYAML()
		require.NoError(t, err)
		tree, err := parseConfig(typoCfg)
		require.NoError(t, err)
		assert.Equal(t, []string{"controlplane.jwt.issuer", "gc.auto_enable"}, unknownKeys(tree, ref))

		out, code := offlineValidate(t, mapConfigToTemp(t, typoCfg), offlineEnv(ds))
		assert.Equal(t, 0, code, "unknown keys are only a warning in v0.29.0: %s", out)
		err = validateOutputOK(out, code)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "unknown keys")
	})

	t.Run("paths outside the volumes", func(t *testing.T) {
		bad := strings.Replace(cfg, specs.ControlPlaneMountPath+"/", "/var/lib/dittofs/", 1)
		require.NotEqual(t, cfg, bad)
		_, _, err := rewriteConfigPaths(bad, func(p string) (string, bool) {
			return "/x" + p, strings.HasPrefix(p, "/data/")
		})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "database.sqlite.path")
	})
}
