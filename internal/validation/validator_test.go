package validation

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

func TestBlocking(t *testing.T) {
	assert.Nil(t, Findings{Warnings: []string{"w"}}.Blocking(), "warnings never block")
	assert.Nil(t, Findings{Errors: []string{PerconaCRDMissingMessage}, PerconaCRDMissing: true}.Blocking(),
		"a missing Percona CRD alone is waited for, not refused")

	render := &specs.Problem{Reason: specs.ReasonRenderFailed, Message: "spec.chartValues.ports: may not be set here"}
	assert.Equal(t, render, Findings{Errors: []string{render.Message}, Render: render}.Blocking(),
		"a chart that does not render is RenderFailed, as the Helm reconciler reports it")
	assert.Equal(t, specs.ReasonInvalidSpec, Findings{Errors: []string{"spec.x: no", render.Message}, Render: render}.Blocking().Reason)

	p := Findings{Errors: []string{PerconaCRDMissingMessage, "spec.storage.storageClassName: no"}, PerconaCRDMissing: true}.Blocking()
	if assert.NotNil(t, p) {
		assert.Equal(t, specs.ReasonInvalidSpec, p.Reason)
		assert.Equal(t, PerconaCRDMissingMessage+"; spec.storage.storageClassName: no", p.Message, "every error is listed")
	}
}

func TestPrivilegedPorts(t *testing.T) {
	spec := &v1alpha1.DittoServerSpec{
		ControlPlane: &v1alpha1.ControlPlaneSpec{Port: 80},
		Metrics:      &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 443},
		NFSPort:      ptr.To(int32(2049)),
	}
	assert.Equal(t, []portField{{"spec.controlPlane.port", 80}, {"spec.metrics.port", 443}}, privilegedPorts(spec),
		"container ports below 1024; nfsPort is a Service port and may be low")
	spec.Metrics.Enabled = ptr.To(false)
	assert.Equal(t, []portField{{"spec.controlPlane.port", 80}}, privilegedPorts(spec), "metrics off: no metrics port")
}

func TestPrivilegeErrors(t *testing.T) {
	assert.Empty(t, privilegeErrors(&v1alpha1.DittoServerSpec{}), "the defaults are restricted")
	assert.Empty(t, privilegeErrors(&v1alpha1.DittoServerSpec{
		SecurityContext:    &corev1.SecurityContext{Privileged: ptr.To(false), RunAsUser: ptr.To(int64(1000)), ReadOnlyRootFilesystem: ptr.To(false)},
		PodSecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(1000)), FSGroup: ptr.To(int64(0))},
	}), "non-root users and other settings are the user's")
	got := privilegeErrors(&v1alpha1.DittoServerSpec{
		SecurityContext: &corev1.SecurityContext{
			Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true), RunAsUser: ptr.To(int64(0)), RunAsNonRoot: ptr.To(false),
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}},
		},
		PodSecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(0)), RunAsNonRoot: ptr.To(false)},
	})
	fields := make([]string, 0, len(got))
	for _, e := range got {
		path, msg := splitField(e)
		fields = append(fields, path)
		assert.Contains(t, msg, "remove it", "the fix is named")
	}
	assert.Equal(t, []string{
		"spec.securityContext.privileged", "spec.securityContext.allowPrivilegeEscalation",
		"spec.securityContext.capabilities.add", "spec.securityContext.runAsUser", "spec.securityContext.runAsNonRoot",
		"spec.podSecurityContext.runAsUser", "spec.podSecurityContext.runAsNonRoot",
	}, fields)
	assert.Contains(t, got[2], "SYS_ADMIN", "the offending value is named")
}

func TestReservedPodFields(t *testing.T) {
	assert.Empty(t, reservedPodFields(&v1alpha1.DittoServerSpec{
		PodLabels:      map[string]string{"team": "storage", "app.kubernetes.io/version": "x"},
		PodAnnotations: map[string]string{"prometheus.io/scrape": "true"},
		Env:            []corev1.EnvVar{{Name: "GOMAXPROCS", Value: "2"}, {Name: "TZ", Value: "UTC"}},
	}), "the user's own keys and variables")
	got := reservedPodFields(&v1alpha1.DittoServerSpec{
		PodLabels:      map[string]string{"app.kubernetes.io/instance": "other", "team": "storage"},
		PodAnnotations: map[string]string{"dittofs.dittofs.com/config-hash": "x"},
		Env: []corev1.EnvVar{{Name: "TZ", Value: "UTC"}, {Name: "DITTOFS_CONTROLPLANE_PORT", Value: "9999"},
			{Name: "HOME", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}},
	})
	fields := make([]string, 0, len(got))
	for _, e := range got {
		path, msg := splitField(e)
		fields = append(fields, path)
		assert.Contains(t, msg, "remove it", "the fix is named")
	}
	assert.Equal(t, []string{"spec.podLabels", "spec.podAnnotations", "spec.env[1].name", "spec.env[2].name"}, fields)
	assert.Contains(t, got[0], "app.kubernetes.io/instance", "the offending key is named")
	assert.Contains(t, got[2], "DITTOFS_CONTROLPLANE_PORT")
	assert.NotContains(t, got[2], "9999", "values are never echoed")
}

// TestServiceMonitorWithoutMetrics: asking for a ServiceMonitor with metrics off is a warning
// (nothing to scrape), not an error.
func TestServiceMonitorWithoutMetrics(t *testing.T) {
	v := &Validator{}
	ds := &v1alpha1.DittoServer{Spec: v1alpha1.DittoServerSpec{
		Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"},
		Metrics: &v1alpha1.MetricsSpec{Enabled: ptr.To(false), ServiceMonitor: &v1alpha1.ServiceMonitorSpec{Enabled: true}},
	}}
	f, err := v.Validate(context.Background(), ds)
	require.NoError(t, err)
	assert.Empty(t, f.Errors)
	assert.Contains(t, strings.Join(f.Warnings, "\n"), "spec.metrics.serviceMonitor.enabled has no effect while spec.metrics.enabled is false")
	ds.Spec.Metrics.Enabled = ptr.To(true)
	f, err = v.Validate(context.Background(), ds)
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(f.Warnings, "\n"), "serviceMonitor")
}

func TestNoEffectFields(t *testing.T) {
	assert.Empty(t, NoEffectFields(&v1alpha1.DittoServerSpec{SMB: &v1alpha1.SMBSpec{Enabled: true, MaxConnections: ptr.To(int32(5))}}),
		"spec.smb.maxConnections is applied through the REST API")
	got := NoEffectFields(&v1alpha1.DittoServerSpec{
		Cache:    &v1alpha1.CacheSpec{},
		Identity: &v1alpha1.IdentitySpec{JWT: &v1alpha1.JWTSpec{Issuer: "me"}},
		SMB:      &v1alpha1.SMBSpec{Credits: &v1alpha1.SMBCreditsSpec{}, MetricsLogInterval: "1m"},
	})
	assert.Equal(t, []string{
		"spec.cache has no effect on DittoFS v0.29.0 (accepted for compatibility); remove it",
		"spec.identity.jwt.issuer has no effect on DittoFS v0.29.0 (accepted for compatibility); remove it",
		"spec.smb.credits has no effect on DittoFS v0.29.0 (accepted for compatibility); remove it",
		"spec.smb.metricsLogInterval has no effect on DittoFS v0.29.0 (accepted for compatibility); remove it",
	}, got)
}

func TestSplitField(t *testing.T) {
	path, msg := splitField("spec.percona.storageClassName: StorageClass \"x\" does not exist")
	assert.Equal(t, "spec.percona.storageClassName", path)
	assert.Equal(t, "StorageClass \"x\" does not exist", msg)
	path, msg = splitField("the Percona operator is not installed")
	assert.Equal(t, "spec", path)
	assert.Equal(t, "the Percona operator is not installed", msg)
}

// TestWebhookLeavesOtherNamespacesAlone: an operator scoped to its namespaces admits a server
// elsewhere without checking it (another instance may own it, and this one's RBAC may not read
// its Secrets), and says so.
func TestWebhookLeavesOtherNamespacesAlone(t *testing.T) {
	w := &dittoServerWebhook{validator: &Validator{}, namespaces: []string{"team-a", "team-b"}}
	ds := &v1alpha1.DittoServer{}
	ds.Namespace = "team-c"
	ds.Spec.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	warnings, err := w.validate(context.Background(), ds)
	assert.NoError(t, err)
	if assert.Len(t, warnings, 1) {
		assert.Contains(t, warnings[0], "namespace team-c is not watched")
		assert.Contains(t, warnings[0], "WATCH_NAMESPACE=team-a,team-b")
	}
}
