package v1alpha1

import corev1 "k8s.io/api/core/v1"

// The accessors below read a spec that may not have been defaulted (objects built in Go, or
// created before a default existed). They fall back to the same defaults as Default.

// EffectiveReplicas is spec.replicas or its default.
func (s *DittoServerSpec) EffectiveReplicas() int32 {
	if s.Replicas == nil {
		return DefaultReplicas
	}
	return *s.Replicas
}

// APIPort is spec.controlPlane.port or its default.
func (s *DittoServerSpec) APIPort() int32 {
	if s.ControlPlane == nil || s.ControlPlane.Port == 0 {
		return DefaultAPIPort
	}
	return s.ControlPlane.Port
}

// MetricsEnabled is spec.metrics.enabled or its default (true).
func (s *DittoServerSpec) MetricsEnabled() bool {
	return s.Metrics == nil || s.Metrics.Enabled == nil || *s.Metrics.Enabled
}

// MetricsPath is spec.metrics.path or its default.
func (s *DittoServerSpec) MetricsPath() string {
	if s.Metrics == nil || s.Metrics.Path == "" {
		return DefaultMetricsPath
	}
	return s.Metrics.Path
}

// MetricsTokenRef is spec.metrics.bearerTokenSecretRef while metrics are enabled, else nil.
func (s *DittoServerSpec) MetricsTokenRef() *corev1.SecretKeySelector {
	if !s.MetricsEnabled() || s.Metrics == nil {
		return nil
	}
	return s.Metrics.BearerTokenSecretRef
}

// MetricsPort is spec.metrics.port or its default.
func (s *DittoServerSpec) MetricsPort() int32 {
	if s.Metrics == nil || s.Metrics.Port == 0 {
		return DefaultMetricsPort
	}
	return s.Metrics.Port
}

// SMBEnabled reports whether spec.smb.enabled is set.
func (s *DittoServerSpec) SMBEnabled() bool { return s.SMB != nil && s.SMB.Enabled }

// SMBPort is spec.smb.port or its default.
func (s *DittoServerSpec) SMBPort() int32 {
	if s.SMB == nil || s.SMB.Port == nil {
		return DefaultSMBPort
	}
	return *s.SMB.Port
}

// NFSServicePort is spec.nfsPort or its default.
func (s *DittoServerSpec) NFSServicePort() int32 {
	if s.NFSPort == nil {
		return DefaultNFSPort
	}
	return *s.NFSPort
}

// PerconaEnabled reports whether spec.percona.enabled is set.
func (s *DittoServerSpec) PerconaEnabled() bool { return s.Percona != nil && s.Percona.Enabled }

// APITLSMode is spec.controlPlane.tls.mode or its default (Operator).
func (s *DittoServerSpec) APITLSMode() APITLSMode {
	if s.ControlPlane == nil || s.ControlPlane.TLS == nil || s.ControlPlane.TLS.Mode == "" {
		return APITLSOperator
	}
	return s.ControlPlane.TLS.Mode
}

// APITLSEnabled reports whether the REST API serves HTTPS.
func (s *DittoServerSpec) APITLSEnabled() bool { return s.APITLSMode() != APITLSDisabled }

// PerconaSSLMode is spec.percona.sslMode or its default (verify-full).
func (s *DittoServerSpec) PerconaSSLMode() string {
	if s.Percona == nil || s.Percona.SSLMode == "" {
		return PerconaSSLVerifyFull
	}
	return s.Percona.SSLMode
}

// IsEnabled reports whether Kerberos is on: spec.identity.kerberos.enabled, true when unset.
func (k *KerberosSpec) IsEnabled() bool { return k.Enabled == nil || *k.Enabled }

// Krb5ConfKeyOrDefault is spec.identity.kerberos.krb5ConfKey, defaulted.
func (k *KerberosSpec) Krb5ConfKeyOrDefault() string {
	if k.Krb5ConfKey == "" {
		return DefaultKrb5ConfKey
	}
	return k.Krb5ConfKey
}
