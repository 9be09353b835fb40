package validation

import (
	"testing"

	"github.com/stretchr/testify/assert"
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
		Metrics:      &v1alpha1.MetricsSpec{Enabled: true, Port: 443},
		NFSPort:      ptr.To(int32(2049)),
	}
	assert.Equal(t, []portField{{"spec.controlPlane.port", 80}, {"spec.metrics.port", 443}}, privilegedPorts(spec),
		"container ports below 1024; nfsPort is a Service port and may be low")
	spec.Metrics.Enabled = false
	assert.Equal(t, []portField{{"spec.controlPlane.port", 80}}, privilegedPorts(spec), "metrics off: no metrics port")
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
