package integration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

func TestCreateProducesObjectsAndStatus(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "basic")
	require.NoError(t, k8s.Create(ctx(), ds))

	sts := getStatefulSet(t, ns, "basic")
	cur := getServer(t, ns, "basic")
	isOwned := func(o metav1.Object) {
		t.Helper()
		refs := o.GetOwnerReferences()
		require.Len(t, refs, 1, "%s owner refs", o.GetName())
		assert.Equal(t, cur.UID, refs[0].UID)
		assert.True(t, *refs[0].Controller)
	}
	isOwned(sts)

	// ConfigMap and Services from the chart.
	cm := &corev1.ConfigMap{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "basic-config"}, cm))
	isOwned(cm)
	assert.Contains(t, cm.Data["config.yaml"], "host: 0.0.0.0")
	for _, name := range []string{"basic-headless", "basic-file", "basic-api", "basic-metrics"} {
		svc := &corev1.Service{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, svc), name)
		isOwned(svc)
		assert.Equal(t, specs.SelectorLabels(cur), svc.Spec.Selector, name)
		assert.Equal(t, "dittofs", svc.Labels["app.kubernetes.io/part-of"], name)
		assert.Equal(t, "Helm", svc.Labels["app.kubernetes.io/managed-by"], name)
	}
	metricsSvc := &corev1.Service{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "basic-metrics"}, metricsSvc), "metrics are on by default")
	for k, v := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"} {
		assert.Equal(t, v, metricsSvc.Annotations[k], "announced for annotation-based scraping: %s", k)
	}
	file := &corev1.Service{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "basic-file"}, file))
	require.Len(t, file.Spec.Ports, 1)
	assert.Equal(t, int32(12049), file.Spec.Ports[0].Port)
	assert.Equal(t, intstr.FromInt32(12049), file.Spec.Ports[0].TargetPort)

	// The StatefulSet: exact contract of docs/ARCHITECTURE.md, "The DittoFS contract".
	pod := sts.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, v1alpha1.DefaultImage, c.Image)
	assert.Equal(t, []string{"/app/dfs"}, c.Command)
	assert.Equal(t, []string{"start", "--foreground", "--config", "/config/config.yaml"}, c.Args)
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom
	}
	require.NotNil(t, env["DITTOFS_CONTROLPLANE_SECRET"])
	assert.Equal(t, "dittofs-jwt-secret", env["DITTOFS_CONTROLPLANE_SECRET"].SecretKeyRef.Name)
	assert.Equal(t, "secret", env["DITTOFS_CONTROLPLANE_SECRET"].SecretKeyRef.Key)
	require.NotNil(t, env["DITTOFS_ADMIN_INITIAL_PASSWORD"])
	assert.Equal(t, "dittofs-admin-secret", env["DITTOFS_ADMIN_INITIAL_PASSWORD"].SecretKeyRef.Name)
	assert.NotContains(t, env, "DATABASE_URL")
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	assert.Equal(t, map[string]int32{"api": 8080, "nfs": 12049, "metrics": 9090}, ports)
	assert.Equal(t, "/health", c.StartupProbe.HTTPGet.Path)
	assert.Equal(t, int32(30), c.StartupProbe.FailureThreshold)
	assert.Equal(t, int32(5), c.StartupProbe.PeriodSeconds)
	assert.Equal(t, "/health", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/health/ready", c.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, intstr.FromInt32(8080), c.ReadinessProbe.HTTPGet.Port)
	assert.Equal(t, int64(5), c.Lifecycle.PreStop.Sleep.Seconds)
	assert.Equal(t, int64(105), *pod.TerminationGracePeriodSeconds)
	assert.False(t, *pod.AutomountServiceAccountToken)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	assert.Equal(t, int64(65532), *pod.SecurityContext.FSGroup)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
	assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	assert.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	assert.Equal(t, "/data/controlplane", mounts["controlplane"])
	assert.Equal(t, "/data/metadata", mounts["metadata"])
	assert.Equal(t, "/data/content", mounts["content"])
	assert.NotContains(t, mounts, "cache", "the content volume holds the files (no spec.s3): no cache volume nothing would use")
	assert.Equal(t, "/config", mounts["config"])
	var claims []string
	for _, vc := range sts.Spec.VolumeClaimTemplates {
		claims = append(claims, vc.Name)
	}
	assert.Equal(t, []string{"controlplane", "metadata", "content"}, claims)
	assert.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	assert.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled)
	assert.NotEmpty(t, sts.Spec.Template.Annotations[specs.AnnotationConfigHash])
	assert.Equal(t, "basic-headless", sts.Spec.ServiceName)

	// No pods yet: not ready, with the reason.
	waitCondition(t, ns, "basic", specs.ConditionConfigReady, metav1.ConditionTrue, specs.ReasonConfigRendered)
	waitCondition(t, ns, "basic", specs.ConditionReady, metav1.ConditionFalse, "")

	markStatefulSetReady(t, ns, "basic")
	got := waitCondition(t, ns, "basic", specs.ConditionReady, metav1.ConditionTrue, specs.ReasonAllReady)
	assert.Equal(t, v1alpha1.PhaseRunning, got.Status.Phase)
	assert.Equal(t, got.Generation, got.Status.ObservedGeneration)
	assert.Equal(t, int32(1), got.Status.ReadyReplicas)
	assert.Equal(t, "basic-file."+ns+".svc:12049", got.Status.NFSEndpoint)
	assert.Equal(t, "basic-api."+ns+".svc:8080", got.Status.APIEndpoint)
	assert.Equal(t, sts.Spec.Template.Annotations[specs.AnnotationConfigHash], got.Status.ConfigHash)
	for _, c := range got.Status.Conditions {
		assert.NotEmpty(t, c.Reason, c.Type)
		assert.Equal(t, got.Generation, c.ObservedGeneration, c.Type)
	}
	assert.Equal(t, metav1.ConditionTrue, condition(got, specs.ConditionDeployed).Status, "Helm's condition coexists")
	require.NotNil(t, got.Status.DeployedRelease)
	assert.Equal(t, "basic", got.Status.DeployedRelease.Name)
}

func TestGeneratedSecretsAreCreatedOnce(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "gen", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	sts := getStatefulSet(t, ns, "gen")

	jwt, admin := &corev1.Secret{}, &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gen-jwt-secret"}, jwt))
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gen-admin-credentials"}, admin))
	assert.Len(t, jwt.Data["secret"], 48)
	assert.Equal(t, "admin", string(admin.Data["username"]))
	assert.Len(t, admin.Data["password"], 24)
	assert.Empty(t, jwt.OwnerReferences, "no owner reference: kept with the data when the server is deleted")
	assert.Equal(t, "gen", jwt.Labels[specs.LabelInstance], "found again by name and label")
	env := map[string]string{}
	for _, e := range sts.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil {
			env[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	assert.Equal(t, "gen-jwt-secret/secret", env["DITTOFS_CONTROLPLANE_SECRET"])
	assert.Equal(t, "gen-admin-credentials/password", env["DITTOFS_ADMIN_INITIAL_PASSWORD"])
	testenv.WaitEvent(t, k8s, ns, "gen", specs.EventCreated)
	assert.Equal(t, []string{"Created Secret gen-jwt-secret (generated once, never rotated by the operator), " +
		"Secret gen-admin-credentials (generated once, never rotated by the operator)"},
		testenv.Events(t, k8s, ns, "gen", specs.EventCreated), "one event tells where the generated credentials are")

	// A spec change reconciles again; the generated values stay.
	updateServer(t, ns, "gen", func(ds *v1alpha1.DittoServer) {
		ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(false)}
	})
	eventually(t, "metrics Service gone with metrics off", func() error {
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gen-metrics"}, &corev1.Service{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
	jwt2, admin2 := &corev1.Secret{}, &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gen-jwt-secret"}, jwt2))
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gen-admin-credentials"}, admin2))
	assert.Equal(t, jwt.Data, jwt2.Data)
	assert.Equal(t, admin.Data, admin2.Data)
	assert.Equal(t, jwt.ResourceVersion, jwt2.ResourceVersion, "never rewritten")
}
