package specs

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// ServiceMonitorGVK is the Prometheus operator's ServiceMonitor kind.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// WantsServiceMonitor reports whether the spec asks for a ServiceMonitor (metrics on, and
// spec.metrics.serviceMonitor.enabled).
func WantsServiceMonitor(ds *v1alpha1.DittoServer) bool {
	m := ds.Spec.Metrics
	return ds.Spec.MetricsEnabled() && m != nil && m.ServiceMonitor != nil && m.ServiceMonitor.Enabled
}

// DesiredServiceMonitor builds the server's ServiceMonitor "<name>": it scrapes the "metrics"
// port of the "-metrics" Service at spec.metrics.path, with the bearer token of
// spec.metrics.bearerTokenSecretRef when one is set. The operator's labels win over the
// spec's. The owner reference is added by the caller.
func DesiredServiceMonitor(ds *v1alpha1.DittoServer) *unstructured.Unstructured {
	sm := ds.Spec.Metrics.ServiceMonitor
	labels := map[string]any{}
	for k, v := range withUserEntries(sm.Labels, CommonLabels(ds, "metrics")) {
		labels[k] = v
	}
	endpoint := map[string]any{"port": "metrics", "path": ds.Spec.MetricsPath()}
	if ref := ds.Spec.MetricsTokenRef(); ref != nil {
		endpoint["authorization"] = map[string]any{
			"type":        "Bearer",
			"credentials": map[string]any{"name": ref.Name, "key": ref.Key},
		}
	}
	if sm.Interval != "" {
		endpoint["interval"] = sm.Interval
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": ds.Name, "namespace": ds.Namespace, "labels": labels},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{
				LabelInstance: ds.Name, LabelPartOf: PartOf, LabelComponent: "metrics",
			}},
			"endpoints": []any{endpoint},
		},
	}}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	return u
}
