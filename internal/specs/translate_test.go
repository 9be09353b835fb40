package specs

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// knownConfigKeys are the top-level sections DittoFS v0.29.0 reads from its config file
// (docs/ARCHITECTURE.md, "The DittoFS contract"). Anything else is ignored by the server with a warning.
var knownConfigKeys = map[string]bool{
	"logging": true, "shutdown_timeout": true, "database": true, "controlplane": true, "admin": true,
	"metrics": true, "gc": true, "snapshot": true, "blockstore": true, "metadata": true,
	"kerberos": true, "ldap": true, "identity": true,
}

func renderConfig(t *testing.T, ds *v1alpha1.DittoServer) map[string]any {
	t.Helper()
	r, err := testRenderer(t).Render(ds)
	require.NoError(t, err)
	cfgYAML, err := r.ConfigYAML()
	require.NoError(t, err)
	cfg := map[string]any{}
	require.NoError(t, yaml.Unmarshal([]byte(cfgYAML), &cfg))
	return cfg
}

func chartValues(t *testing.T, v map[string]any) *apiextensionsv1.JSON {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return &apiextensionsv1.JSON{Raw: raw}
}

func TestConfigContract(t *testing.T) {
	specs := map[string]func(*v1alpha1.DittoServerSpec){
		"default": nil,
		"metrics": func(s *v1alpha1.DittoServerSpec) {
			s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 9100}
		},
		"postgres": func(s *v1alpha1.DittoServerSpec) {
			s.Database = &v1alpha1.DatabaseSpec{Type: "postgres"}
		},
		"percona": func(s *v1alpha1.DittoServerSpec) { s.Percona = &v1alpha1.PerconaSpec{Enabled: true} },
		"ports":   func(s *v1alpha1.DittoServerSpec) { s.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 9000} },
		"metrics off": func(s *v1alpha1.DittoServerSpec) {
			s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(false)}
		},
		"kerberos": func(s *v1alpha1.DittoServerSpec) {
			s.Identity = &v1alpha1.IdentitySpec{Kerberos: kerberosSpec(nil)}
		},
		"metrics token and path": func(s *v1alpha1.DittoServerSpec) {
			s.Metrics = &v1alpha1.MetricsSpec{Path: "/prom", BearerTokenSecretRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "scrape"}, Key: "token"}}
		},
	}
	for name, mutate := range specs {
		t.Run(name, func(t *testing.T) {
			ds := server(mutate)
			cfg := renderConfig(t, ds)
			for k := range cfg {
				assert.True(t, knownConfigKeys[k], "config key %q is not one DittoFS v0.29.0 knows", k)
			}
			cp := cfg["controlplane"].(map[string]any)
			assert.Equal(t, "0.0.0.0", cp["host"], "the API must listen on the pod IP")
			assert.InDelta(t, float64(ds.Spec.APIPort()), cp["port"], 0)
			assert.NotContains(t, cp, "secret", "no secret material in the ConfigMap")
			assert.Equal(t, "stdout", cfg["logging"].(map[string]any)["output"])
			db := cfg["database"].(map[string]any)
			if UsesPostgres(&ds.Spec) {
				assert.Equal(t, "postgres", db["type"])
				assert.NotContains(t, db, "sqlite")
				assert.NotContains(t, db, "postgres", "connection settings come from env")
			} else {
				assert.Equal(t, "sqlite", db["type"])
				assert.Equal(t, "/data/controlplane/controlplane.db", db["sqlite"].(map[string]any)["path"])
			}
			m := cfg["metrics"].(map[string]any)
			if ds.Spec.MetricsEnabled() {
				assert.Equal(t, true, m["enabled"])
				assert.Equal(t, "0.0.0.0", m["host"])
				assert.InDelta(t, float64(ds.Spec.MetricsPort()), m["port"], 0)
				// Keys DittoFS defaults itself are left out, so a server that had metrics on
				// before path and token existed renders the same config (same pod).
				if p := ds.Spec.MetricsPath(); p != "/metrics" {
					assert.Equal(t, p, m["path"])
				} else {
					assert.NotContains(t, m, "path")
				}
				if ds.Spec.MetricsTokenRef() != nil {
					assert.Equal(t, "token", m["auth"])
					assert.Equal(t, "/var/run/dittofs/metrics-token/token", m["token_file"])
				} else {
					assert.NotContains(t, m, "auth")
					assert.NotContains(t, m, "token_file")
				}
			} else {
				assert.Equal(t, false, m["enabled"])
			}
		})
	}
}

// TestLogging: spec.logging reaches config.yaml (DittoFS reads it at boot, so a change is a
// config change and restarts the pod); spec.chartValues.config.logging, the way before the
// field existed, still wins over it.
func TestLogging(t *testing.T) {
	logging := func(ds *v1alpha1.DittoServer) map[string]any {
		return renderConfig(t, ds)["logging"].(map[string]any)
	}
	assert.Equal(t, map[string]any{"level": "INFO", "format": "json", "output": "stdout"}, logging(server(nil)), "the defaults")
	debug := server(func(s *v1alpha1.DittoServerSpec) {
		s.Logging = &v1alpha1.LoggingSpec{Level: "DEBUG", Format: "text"}
	})
	assert.Equal(t, map[string]any{"level": "DEBUG", "format": "text", "output": "stdout"}, logging(debug))
	assert.Equal(t, "json", logging(server(func(s *v1alpha1.DittoServerSpec) {
		s.Logging = &v1alpha1.LoggingSpec{Level: "WARN"}
	}))["format"], "an unset format keeps its default")

	r := testRenderer(t)
	configYAML := func(ds *v1alpha1.DittoServer) string {
		rendered, err := r.Render(ds)
		require.NoError(t, err)
		cfg, err := rendered.ConfigYAML()
		require.NoError(t, err)
		return cfg
	}
	assert.NotEqual(t, configYAML(server(nil)), configYAML(debug), "a level change is a config change")

	overridden := server(func(s *v1alpha1.DittoServerSpec) {
		s.Logging = &v1alpha1.LoggingSpec{Level: "DEBUG"}
		s.ChartValues = chartValues(t, map[string]any{"config": map[string]any{"logging": map[string]any{"level": "ERROR"}}})
	})
	assert.Equal(t, "ERROR", logging(overridden)["level"])
}

func TestChartValues(t *testing.T) {
	t.Run("merged last: extra config and labels", func(t *testing.T) {
		ds := server(func(s *v1alpha1.DittoServerSpec) {
			s.ChartValues = chartValues(t, map[string]any{
				"labels": map[string]any{"team": "storage"},
				"config": map[string]any{"gc": map[string]any{"auto_enabled": false}, "logging": map[string]any{"level": "DEBUG"}},
			})
		})
		r, err := testRenderer(t).Render(ds)
		require.NoError(t, err)
		cm, err := r.ConfigMap()
		require.NoError(t, err)
		assert.Equal(t, "storage", cm.Labels["team"])
		assert.Equal(t, "dittofs", cm.Labels[LabelPartOf])
		cfg := renderConfig(t, ds)
		assert.Equal(t, false, cfg["gc"].(map[string]any)["auto_enabled"])
		assert.Equal(t, "DEBUG", cfg["logging"].(map[string]any)["level"])
		assert.Equal(t, "stdout", cfg["logging"].(map[string]any)["output"], "untouched keys stay")
	})

	bad := map[string]map[string]any{
		"unknown config section":     {"config": map[string]any{"shares": []any{}}},
		"loopback API":               {"config": map[string]any{"controlplane": map[string]any{"host": "127.0.0.1"}}},
		"secret in the ConfigMap":    {"config": map[string]any{"controlplane": map[string]any{"jwt": map[string]any{"secret": "x"}}}},
		"log file":                   {"config": map[string]any{"logging": map[string]any{"output": "/var/log/dfs.log"}}},
		"port out of range":          {"ports": map[string]any{"nfs": 70000}},
		"overriding operator labels": {"labels": map[string]any{"app.kubernetes.io/name": "x"}},
		"unknown top-level value":    {"replicas": 3},
		"sqlite path off the volume": {"sqlite": map[string]any{"path": "/tmp/x.db"}},
	}
	for name, values := range bad {
		t.Run("rejected: "+name, func(t *testing.T) {
			ds := server(func(s *v1alpha1.DittoServerSpec) { s.ChartValues = chartValues(t, values) })
			_, err := testRenderer(t).Render(ds)
			problem, ok := AsProblem(err)
			require.True(t, ok, "got %v", err)
			assert.Equal(t, ReasonRenderFailed, problem.Reason)
			assert.True(t, strings.HasPrefix(problem.Message, "spec.chartValues: "), "the message names the field: %s", problem.Message)
			assert.Contains(t, err.Error(), "values.schema.json")
		})
	}
}

func TestOverrideValues(t *testing.T) {
	t.Setenv("DITTOFS_ENVIRONMENT", "staging")
	r := testRenderer(t)
	r.Overrides = map[string]string{"chartValues.labels.environment": "${DITTOFS_ENVIRONMENT}", "nfsPort": "2049"}
	rendered, err := r.Render(server(nil))
	require.NoError(t, err)
	cm, err := rendered.ConfigMap()
	require.NoError(t, err)
	assert.Equal(t, "staging", cm.Labels["environment"])
	var files []string
	for n := range rendered.Manifests {
		files = append(files, n)
	}
	sort.Strings(files)
	assert.Contains(t, rendered.Manifests["dittoserver/templates/services.yaml"], "port: 2049")
}

func TestTranslateNeverCopiesSpec(t *testing.T) {
	vals, err := TranslateValues(nil, server(func(s *v1alpha1.DittoServerSpec) {
		s.Replicas = ptr.To(int32(0))
		s.Percona = &v1alpha1.PerconaSpec{Enabled: true}
	}), "")
	require.NoError(t, err)
	for k := range vals {
		assert.Contains(t, []string{"labels", "annotations", "service", "apiService", "networkPolicy", "ports", "sqlite", "config"}, k)
	}
}

// FuzzTranslate: no spec, however odd, makes the translator or renderer panic.
func FuzzTranslate(f *testing.F) {
	f.Add(`{"storage":{"metadataSize":"1Gi"}}`)
	f.Add(`{"storage":{"metadataSize":"1Gi"},"metrics":{"enabled":true,"port":1},"smb":{"enabled":true},"chartValues":{"config":{"gc":{}}}}`)
	f.Add(`{"database":{"type":"postgres"},"percona":{"enabled":true,"backup":{"enabled":true}},"service":{"annotations":{"a":"b"}}}`)
	f.Add(`{"chartValues":{"labels":null,"ports":{"smb":"x"}},"nfsPort":-1,"controlPlane":{"port":99999}}`)
	r := testRenderer(f)
	f.Fuzz(func(t *testing.T, spec string) {
		ds := &v1alpha1.DittoServer{}
		if err := json.Unmarshal([]byte(`{"metadata":{"name":"f","namespace":"n"},"spec":`+spec+`}`), ds); err != nil {
			return
		}
		rendered, err := r.Render(ds)
		if err != nil {
			if _, ok := AsProblem(err); !ok && !strings.Contains(err.Error(), "overrideValues") {
				t.Fatalf("non-user error for spec %s: %v", spec, err)
			}
			return
		}
		if _, err := rendered.ConfigYAML(); err != nil {
			t.Fatalf("rendered without a config.yaml: %v", err)
		}
	})
}

// TestChartValuesCannotChangeWhatOthersDependOn: a key other parts of the server follow is
// refused with its name; the same value is allowed.
func TestChartValuesCannotChangeWhatOthersDependOn(t *testing.T) {
	refused := map[string]map[string]any{
		"spec.chartValues.config.controlplane.port":                            {"config": map[string]any{"controlplane": map[string]any{"port": 9999}}},
		"spec.chartValues.config.metrics":                                      {"config": map[string]any{"metrics": map[string]any{"port": 9100}}},
		"spec.chartValues.config.shutdown_timeout":                             {"config": map[string]any{"shutdown_timeout": "5m"}},
		"spec.chartValues.config.database":                                     {"config": map[string]any{"database": map[string]any{"type": "postgres"}}},
		"spec.chartValues.ports":                                               {"ports": map[string]any{"api": 9999}},
		"spec.chartValues.owner":                                               {"owner": map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}},
		"spec.chartValues.config.controlplane.require_initial_password_change": {"config": map[string]any{"controlplane": map[string]any{"require_initial_password_change": true}}},
	}
	for field, values := range refused {
		t.Run(field, func(t *testing.T) {
			ds := server(func(s *v1alpha1.DittoServerSpec) { s.ChartValues = chartValues(t, values) })
			_, err := testRenderer(t).Render(ds)
			problem, ok := AsProblem(err)
			require.True(t, ok, "got %v", err)
			assert.Equal(t, ReasonRenderFailed, problem.Reason)
			assert.True(t, strings.HasPrefix(problem.Message, field+": may not be set here"), problem.Message)
		})
	}
	same := server(func(s *v1alpha1.DittoServerSpec) {
		s.ChartValues = chartValues(t, map[string]any{"config": map[string]any{"controlplane": map[string]any{"port": 8080}, "shutdown_timeout": "30s"}})
	})
	_, err := testRenderer(t).Render(same)
	assert.NoError(t, err, "the value the spec gives anyway")
}

// TestCheckOverrides: operator-wide overrides are checked once at startup; the one that does not
// fit is named, the others pass.
func TestCheckOverrides(t *testing.T) {
	chrt := testRenderer(t).Chart
	require.NoError(t, CheckOverrides(chrt, nil, ""))
	require.NoError(t, CheckOverrides(chrt, map[string]string{"chartValues.labels.team": "storage", "chartValues.config.gc.auto_interval": "30m"}, "ops"))
	err := CheckOverrides(chrt, map[string]string{
		"chartValues.labels.team":              "storage",
		"chartValues.config.controlplane.port": "9999",
	}, "ops")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `override value "chartValues.config.controlplane.port"`)
	assert.Contains(t, err.Error(), "set spec.controlPlane.port")
	assert.NotContains(t, err.Error(), `"chartValues.labels.team"`, "only the bad key is named")
	err = CheckOverrides(chrt, map[string]string{"chartValues.config.nosuchsection.key": "1"}, "")
	assert.ErrorContains(t, err, `override value "chartValues.config.nosuchsection.key"`)
}
