package specs

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/strvals"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// invalidSpec is a spec the operator cannot turn into chart values: a Problem whose message
// starts with the field. The Helm reconciler reports it as Irreconcilable, the Go controller
// as ConfigReady=False with reason RenderFailed.
func invalidSpec(field, msg string) *Problem {
	return &Problem{Reason: ReasonRenderFailed, Message: field + ": " + msg}
}

// Translator turns a DittoServer into values of the dittoserver chart. It implements the
// helm-operator-plugins values.Translator interface.
type Translator struct {
	Chart *chart.Chart
	// OperatorNamespace is the operator's own namespace: the NetworkPolicy lets it reach the
	// API ("" when the operator runs outside the cluster).
	OperatorNamespace string
}

// Translate converts the unstructured object the Helm reconciler holds (with the watches.yaml
// overrideValues already applied to its spec) and translates it.
func (t Translator) Translate(_ context.Context, u *unstructured.Unstructured) (chartutil.Values, error) {
	ds := &v1alpha1.DittoServer{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ds); err != nil {
		return nil, invalidSpec("spec", fmt.Sprintf("cannot be read as a DittoServer: %v", err))
	}
	if ds.UID == "" {
		// Without it the chart's objects would have no owner: nothing would delete them.
		return nil, fmt.Errorf("DittoServer %s/%s has no metadata.uid: only a DittoServer read from the API server is installed", ds.Namespace, ds.Name)
	}
	return TranslateValues(t.Chart, ds, t.OperatorNamespace)
}

// TranslateValues builds the chart values for ds: typed translation of the (defaulted) spec,
// then spec.chartValues merged over it, then a check against the chart's values.schema.json.
func TranslateValues(chrt *chart.Chart, ds *v1alpha1.DittoServer, operatorNamespace string) (chartutil.Values, error) {
	typed := translateSpec(ds, operatorNamespace)
	vals := chartutil.Values(typed)
	var extra map[string]any
	if ds.Spec.ChartValues != nil && len(ds.Spec.ChartValues.Raw) > 0 {
		if err := json.Unmarshal(ds.Spec.ChartValues.Raw, &extra); err != nil {
			return nil, invalidSpec("spec.chartValues", fmt.Sprintf("must be an object: %v", err))
		}
		// Merged into copies: the protected values are compared with both as they were.
		vals = chartutil.MergeTables(copyValues(extra), copyValues(typed))
	}
	if chrt != nil {
		// Coalesce with the chart's values.yaml as Helm does (null removes a default), then
		// check the result against values.schema.json.
		coalesced, err := chartutil.CoalesceValues(chrt, vals)
		if err != nil {
			return nil, invalidSpec("spec.chartValues", "cannot be merged with the chart defaults: "+oneLine(err.Error()))
		}
		vals = coalesced
		if err := validateValues(chrt, vals); err != nil {
			return nil, invalidSpec("spec.chartValues", fmt.Sprintf(
				"the merged chart values do not match the chart's values.schema.json; fix or remove the offending keys: %s", oneLine(err.Error())))
		}
	}
	if p := overridesProtected(extra, typed); p != nil {
		return nil, p
	}
	return vals, nil
}

// protectedValues are the chart values other parts of the server depend on: the StatefulSet's
// ports, probes and grace period, the operator's API client, the pod's env. spec.chartValues may
// not change them (setting the value they already have is allowed).
var protectedValues = []struct{ path, reason string }{
	{"ports", "the Services follow spec.nfsPort, spec.smb, spec.controlPlane.port and spec.metrics; set those"},
	{"sqlite", "set spec.database.sqlite.path"},
	{"config.controlplane.port", "set spec.controlPlane.port: the probes, the -api Service and the operator use it"},
	{"config.controlplane.host", "the API must listen on the pod's addresses"},
	{"config.controlplane.require_initial_password_change", "the operator logs in with the admin Secret"},
	{"config.controlplane.tls", "set spec.controlPlane.tls: the probes, the mounted certificate and the operator's client follow it"},
	{"config.metrics", "set spec.metrics: the container port and the -metrics Service follow it"},
	{"config.shutdown_timeout", "the pod's termination grace period is computed from it"},
	{"config.database", "set spec.database or spec.percona: the pod's env and init container follow them"},
	{"config.logging.output", "the pod logs to stdout"},
	{"config.admin", "set spec.identity.admin"},
	{"owner", "the operator sets the objects' owner, the DittoServer"},
}

// overridesProtected returns the Problem of a chartValues key that changes a protected value.
func overridesProtected(extra, typed map[string]any) *Problem {
	for _, p := range protectedValues {
		keys := strings.Split(p.path, ".")
		got, set := lookup(extra, keys)
		if !set {
			continue
		}
		want, _ := lookup(typed, keys)
		if !FieldsMatch(got, want, false) || !FieldsMatch(want, got, false) {
			return invalidSpec("spec.chartValues."+p.path, "may not be set here: "+p.reason+"; remove it from spec.chartValues")
		}
	}
	return nil
}

// lookup returns the value at keys in a nested map.
func lookup(m map[string]any, keys []string) (any, bool) {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// copyValues deep-copies the maps of chart values (MergeTables writes into its first argument
// and shares the maps of its second; coalescing writes into the result).
func copyValues(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, val := range v {
		if m, ok := val.(map[string]any); ok {
			val = copyValues(m)
		}
		out[k] = val
	}
	return out
}

// translateSpec is the typed spec -> values mapping. It never copies spec 1:1.
func translateSpec(in *v1alpha1.DittoServer, operatorNamespace string) map[string]any {
	ds := in.DeepCopy()
	ds.Default()
	s := &ds.Spec

	annotations := stringMap(s.Service.Annotations)

	config := map[string]any{
		"logging": map[string]any{
			"level":  s.Logging.Level,
			"format": s.Logging.Format,
			"output": "stdout",
		},
		"shutdown_timeout": fmt.Sprintf("%ds", ShutdownTimeoutSeconds),
		"database":         databaseConfig(s),
		"controlplane": map[string]any{
			"host": "0.0.0.0",
			"port": int64(s.APIPort()),
			// The operator provisions the admin password out of band (a Secret) and logs in
			// with it; a forced first-login change would lock the operator out.
			"require_initial_password_change": false,
			"jwt": map[string]any{
				"access_token_duration":  s.Identity.JWT.AccessTokenDuration,
				"refresh_token_duration": s.Identity.JWT.RefreshTokenDuration,
			},
		},
		"admin": map[string]any{"username": DefaultAdminUser},
	}
	if s.APITLSEnabled() {
		// DittoFS serves HTTPS with these files and reloads them when they change on disk.
		config["controlplane"].(map[string]any)["tls"] = map[string]any{
			"cert_file": APITLSMountPath + "/" + APITLSCert,
			"key_file":  APITLSMountPath + "/" + APITLSKey,
		}
	}
	if s.MetricsEnabled() {
		// path and auth are written only when they differ from DittoFS's defaults, so servers
		// that had metrics on before these fields existed keep their config (and their pod).
		metrics := map[string]any{"enabled": true, "host": "0.0.0.0", "port": int64(s.MetricsPort())}
		if p := s.MetricsPath(); p != v1alpha1.DefaultMetricsPath {
			metrics["path"] = p
		}
		if s.MetricsTokenRef() != nil {
			metrics["auth"] = "token"
			metrics["token_file"] = MetricsTokenFile
		}
		config["metrics"] = metrics
	} else {
		config["metrics"] = map[string]any{"enabled": false}
	}

	if k := s.Identity.Kerberos; k != nil {
		config["kerberos"] = KerberosConfig(k)
	}

	values := map[string]any{
		"labels":      map[string]any{},
		"annotations": map[string]any{},
		"service": map[string]any{
			"type":        string(s.Service.Type),
			"annotations": annotations,
		},
		"apiService": map[string]any{
			"type":        string(s.ControlPlane.Service.Type),
			"annotations": stringMap(s.ControlPlane.Service.Annotations),
		},
		"networkPolicy": networkPolicyValues(s, operatorNamespace),
		"ports": map[string]any{
			"nfs":       int64(s.NFSServicePort()),
			"nfsTarget": int64(NFSAdapterPort),
			"api":       int64(s.APIPort()),
			"smb": map[string]any{
				"enabled": s.SMBEnabled(),
				"port":    int64(s.SMBPort()),
				"target":  int64(SMBAdapterPort),
			},
			"metrics": map[string]any{
				"enabled": s.MetricsEnabled(),
				"port":    int64(s.MetricsPort()),
				"path":    s.MetricsPath(),
			},
		},
		"sqlite": map[string]any{"path": s.Database.SQLite.Path},
		"config": config,
	}
	if ds.UID != "" {
		// The chart writes the owner reference itself: the Helm library's owner post-renderer,
		// which parsed and re-serialized every manifest for it, is off (helmext/actionclient.go).
		values["owner"] = map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(),
			"kind":       v1alpha1.DittoServerKind,
			"name":       ds.Name,
			"uid":        string(ds.UID),
		}
	}
	return values
}

// networkPolicyValues are the ingress rules of the server's NetworkPolicy. A rule is open (any
// source), or lists its sources; with none it is left out. The file ports are open unless
// spec.networkPolicy.fileFrom restricts them (the kubelet mounts NFS volumes from the node's
// network, which no selector matches). The API and metrics ports take the operator's namespace
// and the spec's sources; the API is open when spec.controlPlane.service exposes it on purpose.
func networkPolicyValues(s *v1alpha1.DittoServerSpec, operatorNamespace string) map[string]any {
	np := s.NetworkPolicy
	var operator []any
	if operatorNamespace != "" {
		operator = append(operator, map[string]any{"namespaceSelector": map[string]any{
			"matchLabels": map[string]any{corev1.LabelMetadataName: operatorNamespace}}})
	}
	rule := func(open bool, base []any, extra []networkingv1.NetworkPolicyPeer) map[string]any {
		from := slices.Clone(base)
		for i := range extra {
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&extra[i])
			if err == nil {
				from = append(from, u)
			}
		}
		return map[string]any{"open": open, "from": orEmpty(from)}
	}
	return map[string]any{
		"enabled": np.Enabled == nil || *np.Enabled,
		"file":    rule(len(np.FileFrom) == 0, nil, np.FileFrom),
		"api":     rule(s.ControlPlane.Service.Type != corev1.ServiceTypeClusterIP, operator, np.APIFrom),
		"metrics": rule(false, operator, np.MetricsFrom),
	}
}

// orEmpty is l, or an empty list for nil (chart values have no nil list).
func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// stringMap is m as chart values.
func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// databaseConfig renders the database section. PostgreSQL connection details reach the pod
// only as DITTOFS_DATABASE_POSTGRES_* env from Secrets; the config just selects the type. The
// chart adds database.sqlite.path (value sqlite.path) for SQLite servers.
func databaseConfig(s *v1alpha1.DittoServerSpec) map[string]any {
	if UsesPostgres(s) {
		return map[string]any{"type": v1alpha1.DatabasePostgres}
	}
	return map[string]any{"type": v1alpha1.DatabaseSQLite}
}

// ApplyOverrides sets watches.yaml overrideValues into the spec of a DittoServer, exactly as the
// Helm reconciler does to its copy before translating (strvals syntax, env expanded), so the
// Go controller renders the same values.
func ApplyOverrides(ds *v1alpha1.DittoServer, overrides map[string]string) (*v1alpha1.DittoServer, error) {
	if len(overrides) == 0 {
		return ds, nil
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ds)
	if err != nil {
		return nil, err
	}
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		obj["spec"] = spec
	}
	for k, v := range overrides {
		if err := strvals.ParseInto(fmt.Sprintf("%s=%s", k, os.ExpandEnv(v)), spec); err != nil {
			return nil, fmt.Errorf("watches.yaml overrideValues %q: %w", k, err)
		}
	}
	out := &v1alpha1.DittoServer{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, out); err != nil {
		return nil, fmt.Errorf("watches.yaml overrideValues do not fit the DittoServer spec: %w", err)
	}
	return out, nil
}

// CheckOverrides renders the chart for a minimal DittoServer with the operator-wide override
// values, so that one that does not fit the spec or the chart's schema stops the operator at
// startup, naming the key, instead of failing every server's reconcile.
func CheckOverrides(chrt *chart.Chart, overrides map[string]string, operatorNamespace string) error {
	if len(overrides) == 0 {
		return nil
	}
	probe := func(o map[string]string) error {
		ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "override-check", Namespace: "default"}}
		ds.Spec.Storage.MetadataSize = "1Gi"
		_, err := (&Renderer{Chart: chrt, Overrides: o, OperatorNamespace: operatorNamespace}).Render(ds)
		return err
	}
	together := probe(overrides)
	if together == nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(overrides)) {
		if err := probe(map[string]string{k: overrides[k]}); err != nil {
			return fmt.Errorf("override value %q (watches.yaml overrideValues, --override-values-file or DITTOFS_OVERRIDE_VALUES) is refused: %s; fix or remove it", k, oneLine(err.Error()))
		}
	}
	return fmt.Errorf("the override values (watches.yaml overrideValues, --override-values-file, DITTOFS_OVERRIDE_VALUES) are refused together: %s", oneLine(together.Error()))
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
