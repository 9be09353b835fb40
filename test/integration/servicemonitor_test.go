package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// serviceMonitorCRD is the Prometheus operator's CRD as its module ships it (make monitoring-crds).
var serviceMonitorCRD = filepath.Join(apiserver.RepoRoot(), "bin", "crds", "prometheus-operator-v0.94.1", "monitoring.coreos.com_servicemonitors.yaml")

// TestServiceMonitor: a server that asks for a ServiceMonitor where the Prometheus operator is
// not installed is Ready with a warning; once the CRD is there the ServiceMonitor scrapes its
// -metrics Service, follows the spec, goes with the server's ownership, and is deleted when the
// spec no longer asks for it.
func TestServiceMonitor(t *testing.T) {
	_, err := os.Stat(serviceMonitorCRD)
	require.NoError(t, err, "run make monitoring-crds")
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "scraped")
	ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), ServiceMonitor: &v1alpha1.ServiceMonitorSpec{
		Enabled: true, Interval: "30s", Labels: map[string]string{"release": "prometheus", specs.LabelInstance: "hijack"}}}
	require.NoError(t, k8s.Create(ctx(), ds))
	getStatefulSet(t, ns, "scraped")
	markStatefulSetReady(t, ns, "scraped")
	testenv.WaitCondition(t, k8s, ns, "scraped", specs.ConditionReady, metav1.ConditionTrue, "", "ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed")

	crds, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{serviceMonitorCRD}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = envtest.UninstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: crds}) })
	// The operator looks again on any change of the server (or after 5 minutes).
	updateServer(t, ns, "scraped", func(ds *v1alpha1.DittoServer) { ds.Spec.Metrics.ServiceMonitor.Labels["team"] = "storage" })

	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(specs.ServiceMonitorGVK)
	eventually(t, "the ServiceMonitor made", func() error {
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scraped"}, sm); err != nil {
			return err
		}
		if sm.GetLabels()["team"] != "storage" {
			return fmt.Errorf("labels %v", sm.GetLabels())
		}
		return nil
	})
	assert.Equal(t, "prometheus", sm.GetLabels()["release"], "the label Prometheus selects by")
	assert.Equal(t, "scraped", sm.GetLabels()[specs.LabelInstance], "the operator's labels win")
	selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	assert.Equal(t, map[string]string{specs.LabelInstance: "scraped", specs.LabelPartOf: specs.PartOf, specs.LabelComponent: "metrics"}, selector)
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	require.Len(t, endpoints, 1)
	assert.Equal(t, map[string]any{"port": "metrics", "path": "/metrics", "interval": "30s"}, endpoints[0])
	owner := metav1.GetControllerOf(sm)
	require.NotNil(t, owner, "goes with the server")
	assert.Equal(t, getServer(t, ns, "scraped").UID, owner.UID)
	// The -metrics Service the ServiceMonitor selects carries those labels.
	svc := &corev1.Service{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scraped-metrics"}, svc))
	for k, v := range selector {
		assert.Equal(t, v, svc.Labels[k], "the -metrics Service is selected by %s", k)
	}
	eventually(t, "status names it, no warning left", func() error {
		got := getServer(t, ns, "scraped")
		if got.Status.ServiceMonitor != "scraped" {
			return fmt.Errorf("status.serviceMonitor %q", got.Status.ServiceMonitor)
		}
		if c := condition(got, specs.ConditionReady); c == nil || strings.Contains(c.Message, "ServiceMonitor CRD") {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	})

	// A path and a bearer token: the ServiceMonitor scrapes there and sends the token from the
	// same Secret key (accepted by the real CRD's schema), the Service announces the path.
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scrape"},
		StringData: map[string]string{"token": "a-scrape-token"}}))
	updateServer(t, ns, "scraped", func(ds *v1alpha1.DittoServer) {
		ds.Spec.Metrics.Path = "/prom"
		ds.Spec.Metrics.BearerTokenSecretRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "scrape"}, Key: "token"}
	})
	eventually(t, "the ServiceMonitor sends the token to the new path", func() error {
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scraped"}, sm); err != nil {
			return err
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		want := map[string]any{"port": "metrics", "path": "/prom", "interval": "30s", "authorization": map[string]any{
			"type": "Bearer", "credentials": map[string]any{"name": "scrape", "key": "token"}}}
		if len(endpoints) != 1 || !equality.Semantic.DeepEqual(want, endpoints[0]) {
			return fmt.Errorf("endpoints %v", endpoints)
		}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scraped-metrics"}, svc); err != nil {
			return err
		}
		if svc.Annotations["prometheus.io/path"] != "/prom" {
			return fmt.Errorf("Service annotations %v", svc.Annotations)
		}
		return nil
	})

	updateServer(t, ns, "scraped", func(ds *v1alpha1.DittoServer) { ds.Spec.Metrics.ServiceMonitor.Enabled = false })
	eventually(t, "the ServiceMonitor deleted", func() error {
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "scraped"}, sm)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
	eventually(t, "status cleared", func() error {
		if got := getServer(t, ns, "scraped").Status.ServiceMonitor; got != "" {
			return fmt.Errorf("status.serviceMonitor %q", got)
		}
		return nil
	})
}
