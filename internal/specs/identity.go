package specs

import (
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// DittoFS v0.29.0's Kerberos defaults, applied when the spec leaves a field empty.
const (
	DefaultKerberosMaxClockSkew = 5 * time.Minute
	DefaultKerberosContextTTL   = 8 * time.Hour
	DefaultKerberosMaxContexts  = 10000
)

// KerberosSettings is spec.identity.kerberos with DittoFS's defaults filled in, as the server
// reports its stored settings (GET /api/v1/identity-providers/kerberos/config).
type KerberosSettings struct {
	Enabled                                     bool
	KeytabPath, Krb5Conf                        string
	ServicePrincipal, Realm, NetBIOS, DNSDomain string
	MaxClockSkew, ContextTTL                    time.Duration
	MaxContexts                                 int
}

// Kerberos resolves k the way DittoFS v0.29.0 does at boot: the realm defaults to the
// principal's @REALM, the DNS domain to the realm in lower case.
func Kerberos(k *v1alpha1.KerberosSpec) KerberosSettings {
	out := KerberosSettings{
		Enabled:          k.IsEnabled(),
		KeytabPath:       KerberosKeytabFile,
		Krb5Conf:         KerberosKrb5Conf,
		ServicePrincipal: k.ServicePrincipal,
		Realm:            k.Realm,
		NetBIOS:          k.NetBIOSDomain,
		DNSDomain:        k.DNSDomain,
		MaxClockSkew:     DefaultKerberosMaxClockSkew,
		ContextTTL:       DefaultKerberosContextTTL,
		MaxContexts:      DefaultKerberosMaxContexts,
	}
	if out.Realm == "" {
		if i := strings.LastIndex(k.ServicePrincipal, "@"); i >= 0 {
			out.Realm = k.ServicePrincipal[i+1:]
		}
	}
	if out.DNSDomain == "" {
		out.DNSDomain = strings.ToLower(out.Realm)
	}
	// The spec's patterns admit only valid durations.
	if d, err := time.ParseDuration(k.MaxClockSkew); err == nil && d > 0 {
		out.MaxClockSkew = d
	}
	if d, err := time.ParseDuration(k.ContextTTL); err == nil && d > 0 {
		out.ContextTTL = d
	}
	if k.MaxContexts > 0 {
		out.MaxContexts = int(k.MaxContexts)
	}
	return out
}

// kerberosPathKeys are the keys of the config file's kerberos block that DittoFS takes from the
// file at every boot; the others (the policy) it takes from its database after the first boot.
var kerberosPathKeys = map[string]bool{"keytab_path": true, "krb5_conf": true}

// KerberosConfig is the kerberos block of config.yaml. DittoFS seeds its database from it on
// the first boot only; later the database wins, except for the file paths.
func KerberosConfig(k *v1alpha1.KerberosSpec) map[string]any {
	s := Kerberos(k)
	out := map[string]any{
		"enabled":           s.Enabled,
		"keytab_path":       s.KeytabPath,
		"krb5_conf":         s.Krb5Conf,
		"service_principal": s.ServicePrincipal,
		"realm":             s.Realm,
		"dns_domain":        s.DNSDomain,
		"max_clock_skew":    s.MaxClockSkew.String(),
		"context_ttl":       s.ContextTTL.String(),
		"max_contexts":      int64(s.MaxContexts),
	}
	if s.NetBIOS != "" {
		out["netbios_domain"] = s.NetBIOS
	}
	return out
}

// HashedConfig is the part of config.yaml that goes into the config hash: all of it but the
// Kerberos policy, which a running server reads from its database (the operator applies a
// change through the API and restarts the pod once, AnnotationKerberosUpdated). A config
// without a kerberos block is returned as is, byte for byte.
func HashedConfig(configYAML string) (string, error) {
	if !strings.HasPrefix(configYAML, "kerberos:") && !strings.Contains(configYAML, "\nkerberos:") {
		return configYAML, nil // no parse on the common path
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configYAML), &cfg); err != nil {
		return "", err
	}
	krb, ok := cfg["kerberos"].(map[string]any)
	if !ok {
		return configYAML, nil
	}
	for k := range krb {
		if !kerberosPathKeys[k] {
			delete(krb, k)
		}
	}
	out, err := yaml.Marshal(cfg)
	return string(out), err
}
