package dittoapi

import (
	"context"
	"net/http"
)

// LDAPConfig is the LDAP identity provider of /api/v1/identity-providers/ldap/config. The
// server never returns the bind password (it reports RedactedSecret when one is stored); an
// empty BindPassword on a put keeps the stored one.
type LDAPConfig struct {
	Enabled         bool    `json:"enabled"`
	URL             string  `json:"url"`
	StartTLS        bool    `json:"start_tls"`
	AllowPlaintext  bool    `json:"allow_plaintext"`
	BaseDN          string  `json:"base_dn"`
	BindDN          string  `json:"bind_dn"`
	BindPassword    string  `json:"bind_password,omitempty"`
	UserAttr        string  `json:"user_attr"`
	Realm           string  `json:"realm"`
	Idmap           string  `json:"idmap"`
	NestedGroups    bool    `json:"nested_groups"`
	Timeout         string  `json:"timeout"`
	MaxGroupResults int     `json:"max_group_results"`
	TLS             LDAPTLS `json:"tls"`
}

// LDAPTLS is the TLS part of LDAPConfig.
type LDAPTLS struct {
	CACertFile         string `json:"ca_cert_file"`
	ClientCertFile     string `json:"client_cert_file"`
	ClientKeyFile      string `json:"client_key_file"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify"`
	MinVersion         string `json:"min_version"`
}

// RedactedSecret is what the server reports instead of a stored secret.
const RedactedSecret = "********"

// KerberosConfig is the Kerberos identity provider of
// /api/v1/identity-providers/kerberos/config (the machine account is left out: the operator
// does not manage it, and an empty one on a put keeps the stored secret).
type KerberosConfig struct {
	Enabled          bool   `json:"enabled"`
	KeytabPath       string `json:"keytab_path"`
	ServicePrincipal string `json:"service_principal"`
	Realm            string `json:"realm"`
	NetBIOSDomain    string `json:"netbios_domain"`
	DNSDomain        string `json:"dns_domain"`
	Krb5Conf         string `json:"krb5_conf"`
	MaxClockSkew     string `json:"max_clock_skew"`
	ContextTTL       string `json:"context_ttl"`
	MaxContexts      int    `json:"max_contexts"`
}

// ProviderTest is the answer of POST /api/v1/identity-providers/{type}/test.
type ProviderTest struct {
	OK      bool   `json:"ok"`
	Stage   string `json:"stage,omitempty"`
	Message string `json:"message,omitempty"`
}

// GetLDAPConfig returns the stored LDAP configuration (IsNotFound: none was ever stored).
func (c *Client) GetLDAPConfig(ctx context.Context) (*LDAPConfig, error) {
	out := &LDAPConfig{}
	return out, c.do(ctx, http.MethodGet, "/api/v1/identity-providers/ldap/config", nil, out)
}

// PutLDAPConfig stores the LDAP configuration; the server validates it (400 with the reason)
// and reloads its resolver without a restart.
func (c *Client) PutLDAPConfig(ctx context.Context, cfg LDAPConfig) (*LDAPConfig, error) {
	out := &LDAPConfig{}
	return out, c.do(ctx, http.MethodPut, "/api/v1/identity-providers/ldap/config", cfg, out)
}

// TestLDAP dials and binds with cfg (an empty bind password: the stored one), storing nothing.
func (c *Client) TestLDAP(ctx context.Context, cfg LDAPConfig) (*ProviderTest, error) {
	out := &ProviderTest{}
	return out, c.do(ctx, http.MethodPost, "/api/v1/identity-providers/ldap/test", cfg, out)
}

// GetKerberosConfig returns the stored Kerberos configuration (IsNotFound: none was stored).
func (c *Client) GetKerberosConfig(ctx context.Context) (*KerberosConfig, error) {
	out := &KerberosConfig{}
	return out, c.do(ctx, http.MethodGet, "/api/v1/identity-providers/kerberos/config", nil, out)
}

// PutKerberosConfig stores the Kerberos configuration. DittoFS v0.29.0 applies the keytab and
// principal at its next start only.
func (c *Client) PutKerberosConfig(ctx context.Context, cfg KerberosConfig) (*KerberosConfig, error) {
	out := &KerberosConfig{}
	return out, c.do(ctx, http.MethodPut, "/api/v1/identity-providers/kerberos/config", cfg, out)
}
