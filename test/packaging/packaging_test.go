// Package packaging checks the install paths: every kustomize overlay renders with the pinned
// kustomize and every object it produces passes the real kube-apiserver's validation
// (server-side dry-run on envtest); the operator's pod passes Pod Security "restricted"; the
// Dockerfile's build steps work natively.
package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// KustomizeVersion is the kustomize the install docs and make build-installer use.
const KustomizeVersion = "v5.8.2"

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	bin := filepath.Join(apiserver.RepoRoot(), "bin", "tools", "kustomize-"+KustomizeVersion)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run make kustomize", bin)
	}
	out, err := exec.Command(bin, "build", filepath.Join(apiserver.RepoRoot(), dir)).CombinedOutput()
	require.NoError(t, err, "kustomize build %s: %s", dir, out)
	return decode(t, out)
}

// decode splits a multi-document YAML stream into objects (empty documents dropped).
func decode(t *testing.T, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	require.NotEmpty(t, objs)
	return objs
}

// notInEnvtest are kinds whose CRDs the test API server does not have (cert-manager's).
var notInEnvtest = map[string]bool{"Certificate": true, "Issuer": true}

func TestOverlaysPassServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	for _, dir := range []string{"config/default", "config/overlays/namespaced", "config/overlays/webhook-certmanager", "config/samples"} {
		t.Run(dir, func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			ns := "packaging-" + strings.NewReplacer("/", "-").Replace(filepath.Base(dir))
			_ = env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			for _, o := range objs {
				if notInEnvtest[o.GetKind()] {
					t.Logf("skipping %s/%s: cert-manager CRDs are not installed in envtest", o.GetKind(), o.GetName())
					continue
				}
				if o.GetKind() == "Namespace" {
					_ = env.Client.Create(ctx, o.DeepCopy())
				}
				obj := o.DeepCopy()
				mapping, err := env.Client.RESTMapper().RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
				require.NoError(t, err, "%s is not a kind this API server knows", obj.GroupVersionKind())
				if mapping.Scope.Name() == "namespace" && obj.GetNamespace() == "" {
					obj.SetNamespace(ns)
				}
				err = env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner("packaging-test"), client.ForceOwnership)
				assert.NoError(t, err, "%s %s/%s rejected by the API server", obj.GetKind(), obj.GetNamespace(), obj.GetName())
			}
		})
	}
}

func TestManagerPodIsRestricted(t *testing.T) {
	for _, dir := range []string{"config/default", "config/overlays/webhook-certmanager"} {
		var dep *appsv1.Deployment
		for _, o := range kustomizeBuild(t, dir) {
			if o.GetKind() == "Deployment" {
				dep = &appsv1.Deployment{}
				require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, dep))
			}
		}
		require.NotNil(t, dep, dir)
		evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
		require.NoError(t, err)
		for _, r := range evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()},
			&dep.Spec.Template.ObjectMeta, &dep.Spec.Template.Spec) {
			assert.True(t, r.Allowed, "%s: Pod Security restricted: %s: %s", dir, r.ForbiddenReason, r.ForbiddenDetail)
		}
		c := dep.Spec.Template.Spec.Containers[0]
		assert.NotNil(t, c.LivenessProbe, dir)
		assert.NotNil(t, c.ReadinessProbe, dir)
		assert.False(t, c.Resources.Limits.Memory().IsZero(), dir)
		assert.Contains(t, c.Args, "--leader-elect", dir)
		if dir == "config/overlays/webhook-certmanager" {
			// The metrics endpoint serves cert-manager's certificate from the mounted Secret.
			assert.Contains(t, c.Args, "--metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs")
			assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "metrics-certs", MountPath: "/tmp/k8s-metrics-server/metrics-certs", ReadOnly: true})
			var secrets []string
			for _, v := range dep.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					secrets = append(secrets, v.Secret.SecretName)
				}
			}
			assert.ElementsMatch(t, []string{"webhook-server-cert", "metrics-server-cert"}, secrets)
		}
	}
}

// TestCertManagerOverlayFollowsItsNamespace: the overlay installed into another namespace (its
// namespace line changed, as `kustomize edit set namespace` does) names that namespace
// everywhere cert-manager and the API server look: the certificate's DNS names, the webhook's
// Service reference and the CA-injection annotation.
func TestCertManagerOverlayFollowsItsNamespace(t *testing.T) {
	src := filepath.Join(apiserver.RepoRoot(), "config", "overlays", "webhook-certmanager")
	dir, err := os.MkdirTemp(filepath.Dir(src), "test-namespace-") // same depth: the same relative resources
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, f := range []string{"kustomization.yaml", "manager_webhook_patch.yaml"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		if f == "kustomization.yaml" {
			require.Contains(t, string(data), "\nnamespace: dittofs-operator-system\n")
			data = []byte(strings.Replace(string(data), "\nnamespace: dittofs-operator-system\n", "\nnamespace: storage-ops\n", 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	rel, err := filepath.Rel(apiserver.RepoRoot(), dir)
	require.NoError(t, err)
	dnsNames := map[string][]string{}
	var inject, webhookNS string
	for _, o := range kustomizeBuild(t, rel) {
		switch o.GetKind() {
		case "Certificate":
			dnsNames[o.GetName()], _, _ = unstructured.NestedStringSlice(o.Object, "spec", "dnsNames")
			issuer, _, _ := unstructured.NestedString(o.Object, "spec", "issuerRef", "name")
			assert.Equal(t, "dittofs-operator-selfsigned-issuer", issuer)
			assert.Equal(t, "storage-ops", o.GetNamespace())
		case "ValidatingWebhookConfiguration":
			inject = o.GetAnnotations()["cert-manager.io/inject-ca-from"]
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			require.Len(t, hooks, 1)
			webhookNS, _, _ = unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "namespace")
		default:
			if o.GetNamespace() != "" {
				assert.Equal(t, "storage-ops", o.GetNamespace(), "%s %s", o.GetKind(), o.GetName())
			}
		}
	}
	assert.Equal(t, map[string][]string{
		"dittofs-operator-serving-cert": {"dittofs-operator-webhook-service.storage-ops.svc", "dittofs-operator-webhook-service.storage-ops.svc.cluster.local"},
		"dittofs-operator-metrics-cert": {"dittofs-operator-controller-manager-metrics-service.storage-ops.svc", "dittofs-operator-controller-manager-metrics-service.storage-ops.svc.cluster.local"},
	}, dnsNames)
	assert.Equal(t, "storage-ops/dittofs-operator-serving-cert", inject)
	assert.Equal(t, "storage-ops", webhookNS)
}

// TestDockerfileBuildsNatively runs the Dockerfile's build step without a container engine:
// every COPY source exists and the go build line produces a static binary that starts.
func TestDockerfileBuildsNatively(t *testing.T) {
	root := apiserver.RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	require.NoError(t, err)
	var build string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "COPY" && !strings.HasPrefix(f[1], "--from") {
			for _, src := range f[1 : len(f)-1] {
				_, err := os.Stat(filepath.Join(root, src))
				assert.NoError(t, err, "Dockerfile copies %s", src)
			}
		}
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	require.NotEmpty(t, build, "no go build step")
	out := filepath.Join(t.TempDir(), "manager")
	build = regexp.MustCompile(`\$\{TARGETOS\}`).ReplaceAllString(build, "linux")
	build = regexp.MustCompile(`\$\{TARGETARCH\}`).ReplaceAllString(build, "amd64")
	build = strings.Replace(build, "-o manager", "-o "+out, 1)
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", build, b)
	b, err = exec.Command("file", out).CombinedOutput()
	if err == nil {
		assert.Contains(t, string(b), "statically linked")
	}
	b, err = exec.Command(out, "--help").CombinedOutput()
	require.NoError(t, err, "%s", b)
	assert.Contains(t, string(b), "-enable-webhooks")
	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	require.NoError(t, err)
	b, err = exec.Command(out, "--version").CombinedOutput()
	require.NoError(t, err, "%s", b)
	assert.Contains(t, string(b), "dittofs-operator "+strings.TrimSpace(string(version))+" ", "the image's binary knows its version")
}

// TestBuildInstaller runs `make build-installer` as docs/INSTALL.md says and checks that the
// single manifest holds the same objects as `kubectl apply -k config/default`.
func TestBuildInstaller(t *testing.T) {
	root := apiserver.RepoRoot()
	cmd := exec.Command("make", "-s", "build-installer")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err := os.ReadFile(filepath.Join(root, "dist", "install.yaml"))
	require.NoError(t, err)
	var kinds []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			kinds = append(kinds, u.GetKind()+"/"+u.GetName())
		}
	}
	var want []string
	for _, o := range kustomizeBuild(t, "config/default") {
		want = append(want, o.GetKind()+"/"+o.GetName())
	}
	assert.Equal(t, want, kinds)
	assert.Contains(t, kinds, "CustomResourceDefinition/dittoservers.dittofs.dittofs.com")
	assert.Contains(t, kinds, "Deployment/dittofs-operator-controller-manager")
}

// TestOverrideValuesByKustomize: the patch docs/INSTALL.md shows sets DITTOFS_OVERRIDE_VALUES on
// the operator's container (the env the operator reads; OLM's Subscription config sets the same).
func TestOverrideValuesByKustomize(t *testing.T) {
	root := apiserver.RepoRoot()
	dir, err := os.MkdirTemp(filepath.Join(root, "config", "overlays"), "test-overrides-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	kustomization := `resources:
  - ../../default
patches:
  - target: {kind: Deployment, name: controller-manager}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: DITTOFS_OVERRIDE_VALUES, value: "{chartValues.labels.environment: prod}"}
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644))
	rel, err := filepath.Rel(root, dir)
	require.NoError(t, err)
	var env []corev1.EnvVar
	for _, o := range kustomizeBuild(t, rel) {
		if o.GetKind() == "Deployment" {
			dep := &appsv1.Deployment{}
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, dep))
			env = dep.Spec.Template.Spec.Containers[0].Env
		}
	}
	assert.Contains(t, env, corev1.EnvVar{Name: "DITTOFS_OVERRIDE_VALUES", Value: "{chartValues.labels.environment: prod}"})
}
