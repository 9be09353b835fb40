package packaging

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/helmcli"
)

var update = flag.Bool("update", false, "rewrite the chart's golden files (testdata/*.golden.yaml)")

const chartDir = helmcli.Chart

// The values files of testdata/, each rendered, linted, compared with its golden file and
// dry-run applied.
var chartCases = []string{"default", "namespaced", "full"}

// Helm runs the pinned Helm CLI.
func Helm(t testing.TB, args ...string) string { return helmcli.Must(t, args...) }

// helmTemplate renders the chart as `helm install dittofs-operator` would into
// dittofs-operator-system (CRDs included), with the values files given.
func helmTemplate(t *testing.T, values ...string) (string, []*unstructured.Unstructured) {
	t.Helper()
	args := []string{"template", "dittofs-operator", chartDir, "-n", "dittofs-operator-system", "--kube-version", "1.35.4", "--include-crds"}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	out := Helm(t, args...)
	return out, decode(t, []byte(out))
}

func valuesFile(name string) string {
	return filepath.Join("test", "packaging", "testdata", name+".values.yaml")
}

// TestChart: for each values file, `helm lint --strict` passes, the rendering equals its golden
// file (go test ./test/packaging -run TestChart -update rewrites them), every object passes the
// real API server's validation (server-side dry-run), and the operator pod is Pod Security
// "restricted".
func TestChart(t *testing.T) {
	ctx := context.Background()
	for _, name := range chartCases {
		t.Run(name, func(t *testing.T) {
			Helm(t, "lint", "--strict", chartDir, "-f", valuesFile(name))
			out, objs := helmTemplate(t, valuesFile(name))
			golden := filepath.Join(apiserver.RepoRoot(), "test", "packaging", "testdata", name+".golden.yaml")
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(out), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test ./test/packaging -run TestChart -update")
			assert.Equal(t, string(want), out, "the rendering changed: review it, then go test ./test/packaging -run TestChart -update")

			ns := "chart-" + name
			_ = env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			for _, o := range objs {
				obj := o.DeepCopy()
				if obj.GetKind() == "CustomResourceDefinition" {
					continue // installed in the test API server already
				}
				mapping, err := env.Client.RESTMapper().RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
				if err != nil && (notInEnvtest[obj.GetKind()] || obj.GetKind() == "ServiceMonitor") {
					t.Logf("skipping %s/%s: its CRD is not installed in envtest", obj.GetKind(), obj.GetName())
					continue
				}
				require.NoError(t, err, "%s is not a kind this API server knows", obj.GroupVersionKind())
				if mapping.Scope.Name() == "namespace" {
					// each case in its own namespace; the watched namespaces exist or not
					obj.SetNamespace(ns)
				}
				err = env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner("chart-test"), client.ForceOwnership)
				assert.NoError(t, err, "%s %s/%s rejected by the API server", obj.GetKind(), obj.GetNamespace(), obj.GetName())
			}

			dep := deployment(t, objs)
			evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
			require.NoError(t, err)
			for _, r := range evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()},
				&dep.Spec.Template.ObjectMeta, &dep.Spec.Template.Spec) {
				assert.True(t, r.Allowed, "Pod Security restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
			}
		})
	}
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			dep := &appsv1.Deployment{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, dep))
			return dep
		}
	}
	t.Fatal("no Deployment")
	return nil
}

// byKindName indexes objects by "Kind/name" (namespaces differ between install paths).
func byKindName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetName()] = o
	}
	return out
}

func field(t *testing.T, o *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	require.NoError(t, err)
	require.True(t, found, "%s/%s has no %s", o.GetKind(), o.GetName(), strings.Join(path, "."))
	return v
}

// TestChartMatchesKustomize: the chart installs what config/ installs, so the two install paths
// never drift: with release name dittofs-operator, the same CRD, the same RBAC objects (names,
// rules, bindings), the same Services and the same operator pod; the namespaced overlay's
// bindings equal the chart's with watchNamespaces; the webhook overlay's webhooks and
// certificates equal the chart's with webhook.enabled and metrics.certManager.
func TestChartMatchesKustomize(t *testing.T) {
	t.Run("config/default", func(t *testing.T) {
		_, rendered := helmTemplate(t, valuesFile("default"))
		chart := byKindName(rendered)
		kust := byKindName(kustomizeBuild(t, "config/default"))
		var names []string
		for k := range kust {
			if !strings.HasPrefix(k, "Namespace/") { // helm install --create-namespace; labels in docs/INSTALL.md
				names = append(names, k)
			}
		}
		sort.Strings(names)
		var chartNames []string
		for k := range chart {
			chartNames = append(chartNames, k)
		}
		sort.Strings(chartNames)
		assert.Equal(t, names, chartNames, "the same objects, by kind and name")
		for _, k := range names {
			c, kz := chart[k], kust[k]
			if c == nil {
				continue
			}
			switch kz.GetKind() {
			case "CustomResourceDefinition":
				assert.Equal(t, field(t, kz, "spec"), field(t, c, "spec"), k)
			case "ClusterRole", "Role":
				assert.Equal(t, field(t, kz, "rules"), field(t, c, "rules"), k)
			case "ClusterRoleBinding", "RoleBinding":
				assert.Equal(t, field(t, kz, "roleRef"), field(t, c, "roleRef"), k)
				assert.Equal(t, field(t, kz, "subjects"), field(t, c, "subjects"), k)
			case "Service":
				assert.Equal(t, field(t, kz, "spec", "ports"), field(t, c, "spec", "ports"), k)
			case "Deployment":
				// The pod spec, whole: the same container, flags, env, probes, security.
				assert.Equal(t, field(t, kz, "spec", "template", "spec"), field(t, c, "spec", "template", "spec"), k)
				assert.Equal(t, field(t, kz, "spec", "replicas"), field(t, c, "spec", "replicas"), k)
			}
		}
	})

	t.Run("config/overlays/namespaced", func(t *testing.T) {
		values := filepath.Join(t.TempDir(), "ns.yaml")
		require.NoError(t, os.WriteFile(values, []byte("watchNamespaces: [dittofs-operator-system]\n"), 0o644))
		_, rendered := helmTemplate(t, values)
		bindings := func(objs []*unstructured.Unstructured) []string {
			var out []string
			for _, o := range objs {
				if strings.HasSuffix(o.GetKind(), "Binding") {
					out = append(out, fmt.Sprintf("%s %s/%s -> %v", o.GetKind(), o.GetNamespace(), o.GetName(), field(t, o, "roleRef", "name")))
				}
			}
			sort.Strings(out)
			return out
		}
		assert.Equal(t, bindings(kustomizeBuild(t, "config/overlays/namespaced")), bindings(rendered))
		env := deployment(t, rendered).Spec.Template.Spec.Containers[0].Env
		assert.Contains(t, env, corev1.EnvVar{Name: "WATCH_NAMESPACE", Value: "dittofs-operator-system"})
	})

	t.Run("config/overlays/webhook-certmanager", func(t *testing.T) {
		values := filepath.Join(t.TempDir(), "wh.yaml")
		require.NoError(t, os.WriteFile(values, []byte("webhook: {enabled: true}\nmetrics: {certManager: true}\n"), 0o644))
		_, rendered := helmTemplate(t, values)
		chart, kust := byKindName(rendered), byKindName(kustomizeBuild(t, "config/overlays/webhook-certmanager"))
		for _, k := range []string{"ValidatingWebhookConfiguration/dittofs-operator-validating-webhook-configuration",
			"Certificate/dittofs-operator-serving-cert", "Certificate/dittofs-operator-metrics-cert", "Issuer/dittofs-operator-selfsigned-issuer",
			"Service/dittofs-operator-webhook-service"} {
			require.Contains(t, kust, k)
			require.Contains(t, chart, k)
		}
		vw := "ValidatingWebhookConfiguration/dittofs-operator-validating-webhook-configuration"
		assert.Equal(t, field(t, kust[vw], "webhooks"), field(t, chart[vw], "webhooks"))
		assert.Equal(t, kust[vw].GetAnnotations(), chart[vw].GetAnnotations())
		for _, k := range []string{"Certificate/dittofs-operator-serving-cert", "Certificate/dittofs-operator-metrics-cert"} {
			assert.Equal(t, field(t, kust[k], "spec", "dnsNames"), field(t, chart[k], "spec", "dnsNames"), k)
		}
		kc, cc := deployment(t, kustomizeBuild(t, "config/overlays/webhook-certmanager")).Spec.Template.Spec.Containers[0], deployment(t, rendered).Spec.Template.Spec.Containers[0]
		assert.Equal(t, kc.Args, cc.Args)
		assert.ElementsMatch(t, kc.Env, cc.Env)
		assert.ElementsMatch(t, kc.Ports, cc.Ports)
		assert.ElementsMatch(t, kc.VolumeMounts, cc.VolumeMounts)
	})
}

// TestChartServiceMonitorInstalls: the chart's ServiceMonitor (metrics.serviceMonitor.enabled)
// is accepted by the Prometheus operator's real CRD with strict field validation.
func TestChartServiceMonitorInstalls(t *testing.T) {
	crd := filepath.Join(apiserver.RepoRoot(), "bin", "crds", "prometheus-operator-v0.94.1", "monitoring.coreos.com_servicemonitors.yaml")
	_, err := os.Stat(crd)
	require.NoError(t, err, "run make monitoring-crds")
	_, rendered := helmTemplate(t, valuesFile("full"))
	sm := byKindName(rendered)["ServiceMonitor/dittofs-operator-controller-manager"]
	require.NotNil(t, sm)
	crds, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{crd}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = envtest.UninstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: crds}) })
	if m, ok := env.Client.RESTMapper().(meta.ResettableRESTMapper); ok {
		m.Reset()
	}
	sm.SetNamespace("default")
	require.NoError(t, env.Client.Create(t.Context(), sm, client.DryRunAll, client.FieldValidation("Strict")))
}
