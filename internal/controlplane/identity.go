package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// DittoFS v0.29.0's LDAP defaults, filled in by the server on every put.
const (
	defaultLDAPUserAttr        = "sAMAccountName"
	defaultLDAPIdmap           = "rfc2307"
	defaultLDAPTimeout         = 10 * time.Second
	defaultLDAPMaxGroupResults = 200
)

// ldapConfig is spec.identity.ldap as DittoFS stores it (its defaults filled in); caFile is
// where the pod has the CA bundle.
func ldapConfig(l *v1alpha1.LDAPSpec, caFile string) dittoapi.LDAPConfig {
	out := dittoapi.LDAPConfig{
		Enabled: true, URL: l.URL, StartTLS: l.StartTLS, AllowPlaintext: l.AllowPlaintext,
		BaseDN: l.BaseDN, BindDN: l.BindDN, UserAttr: l.UserAttr, Realm: l.Realm, Idmap: l.Idmap,
		NestedGroups: l.NestedGroups, Timeout: defaultLDAPTimeout.String(), MaxGroupResults: int(l.MaxGroupResults),
		TLS: dittoapi.LDAPTLS{InsecureSkipVerify: l.InsecureSkipVerify, MinVersion: l.MinTLSVersion},
	}
	if out.UserAttr == "" {
		out.UserAttr = defaultLDAPUserAttr
	}
	if out.Idmap == "" {
		out.Idmap = defaultLDAPIdmap
	}
	if d, err := time.ParseDuration(l.Timeout); err == nil && d > 0 {
		out.Timeout = d.String()
	}
	if out.MaxGroupResults == 0 {
		out.MaxGroupResults = defaultLDAPMaxGroupResults
	}
	if l.CASecretRef != nil {
		out.TLS.CACertFile = caFile
	}
	return out
}

// sameLDAP compares two configurations but for the bind password, which the server never shows.
func sameLDAP(a, b dittoapi.LDAPConfig) bool {
	a.BindPassword, b.BindPassword = "", ""
	a.Timeout, b.Timeout = normalDuration(a.Timeout), normalDuration(b.Timeout)
	return a == b
}

// normalDuration writes a Go duration the way time.Duration.String does ("" stays "").
func normalDuration(s string) string {
	if d, err := time.ParseDuration(s); err == nil {
		return d.String()
	}
	return s
}

// applyLDAP converges spec.identity.ldap through the API, with one call in steady state (none
// for a server whose spec has never had it). DittoFS keeps the configuration in its database and
// reloads it without a restart, so changes, drift and a new bind password (seen through an HMAC
// in the operator Secret) are put as they come. A spec that lets it go disables the directory
// the operator configured; one configured by other means (dfsctl) is left alone.
func (r *run) applyLDAP(ctx context.Context) error {
	ds := r.ds
	var l *v1alpha1.LDAPSpec
	if ds.Spec.Identity != nil {
		l = ds.Spec.Identity.LDAP
	}
	applied := r.secret.Annotations[specs.AnnotationLDAP]
	if l == nil && applied == "" {
		return nil
	}
	cur, err := r.api.GetLDAPConfig(ctx)
	missing := dittoapi.IsNotFound(err)
	if err != nil && !missing {
		return fmt.Errorf("reading the LDAP configuration: %w", err)
	}
	if l == nil {
		if !missing && cur.Enabled {
			cur.Enabled, cur.BindPassword = false, "" // an empty password keeps the stored one
			if _, err := r.api.PutLDAPConfig(ctx, *cur); err != nil {
				return fmt.Errorf("disabling the LDAP directory: %w", err)
			}
			r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventLDAPDisabled,
				"Disabled the LDAP directory %s: spec.identity.ldap was removed (its settings are kept on the server, disabled)", cur.URL)
		}
		return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationLDAP: ""})
	}

	ref := l.BindPasswordSecretRef
	secret := &corev1.Secret{}
	if err := r.deps.Secrets.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: ref.Name}, secret); err != nil {
		return &k8sError{fmt.Errorf("reading Secret %s (spec.identity.ldap.bindPasswordSecretRef): %w", ref.Name, err)}
	}
	password := string(secret.Data[ref.Key])
	want := ldapConfig(l, r.podPath(ds, specs.LDAPCAFile))
	stamp := specs.KeyedHash(string(r.secret.Data[specs.OperatorSecretKeyPassword]), password)
	if !missing && sameLDAP(*cur, want) && applied == stamp {
		return nil
	}
	want.BindPassword = password
	if _, err := r.api.PutLDAPConfig(ctx, want); err != nil {
		return putError("spec.identity.ldap", err)
	}
	what := "Applied"
	if applied != "" && applied != stamp {
		what = "Applied a new bind password and"
	}
	r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventLDAPApplied,
		"%s spec.identity.ldap (%s, base %s) through the DittoFS API (no restart)", what, l.URL, l.BaseDN)
	return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationLDAP: stamp})
}

// putError is a failed put of field's provider: the server's own validation (400) is a Problem
// that quotes it and names the field; anything else is retried.
func putError(field string, err error) error {
	if dittoapi.StatusOf(err) == http.StatusBadRequest {
		return specs.Problemf(specs.ReasonControlPlaneFailed, "%s: DittoFS refused the configuration: %s; fix %s", field, dittoapi.MessageOf(err), field)
	}
	return fmt.Errorf("applying %s: %w", field, err)
}

// kerberosConfig is the DittoFS form of spec.identity.kerberos.
func kerberosConfig(k specs.KerberosSettings) dittoapi.KerberosConfig {
	return dittoapi.KerberosConfig{
		Enabled: k.Enabled, KeytabPath: k.KeytabPath, ServicePrincipal: k.ServicePrincipal, Realm: k.Realm,
		NetBIOSDomain: k.NetBIOS, DNSDomain: k.DNSDomain, Krb5Conf: k.Krb5Conf,
		MaxClockSkew: k.MaxClockSkew.String(), ContextTTL: k.ContextTTL.String(), MaxContexts: k.MaxContexts,
	}
}

func sameKerberos(a, b dittoapi.KerberosConfig) bool {
	a.MaxClockSkew, b.MaxClockSkew = normalDuration(a.MaxClockSkew), normalDuration(b.MaxClockSkew)
	a.ContextTTL, b.ContextTTL = normalDuration(a.ContextTTL), normalDuration(b.ContextTTL)
	return a == b
}

// applyKerberos keeps the Kerberos settings DittoFS stored equal to spec.identity.kerberos, with
// one call in steady state (none without Kerberos). DittoFS seeds them from the config file on
// the first boot with Kerberos enabled and reads them from its database afterwards, at startup
// only: a spec change (left out of the config hash, specs.HashedConfig) is put through the API,
// then the pod is restarted once through AnnotationKerberosUpdated. Nothing stored by a pod that
// runs the current template means it booted with Kerberos off (no seed): the settings are put
// the same way. While the pod rolls, nothing is done: the new pod seeds or reads them itself.
func (r *run) applyKerberos(ctx context.Context) error {
	ds := r.ds
	if ds.Spec.Identity == nil || ds.Spec.Identity.Kerberos == nil || r.rollingOut {
		return nil
	}
	k := specs.Kerberos(ds.Spec.Identity.Kerberos)
	k.KeytabPath, k.Krb5Conf = r.podPath(ds, k.KeytabPath), r.podPath(ds, k.Krb5Conf)
	want := kerberosConfig(k)
	cur, err := r.api.GetKerberosConfig(ctx)
	switch {
	case dittoapi.IsNotFound(err):
		if !want.Enabled {
			return nil // off, and nothing stored to turn off
		}
	case err != nil:
		return fmt.Errorf("reading the Kerberos configuration: %w", err)
	case sameKerberos(*cur, want):
		return nil
	}
	stored, err := r.api.PutKerberosConfig(ctx, want)
	if err != nil {
		return putError("spec.identity.kerberos", err)
	}
	if !sameKerberos(*stored, want) {
		// Restarting would not help: the next look would put and restart again.
		return fmt.Errorf("applying spec.identity.kerberos: DittoFS stored %+v, not %+v", *stored, want)
	}
	r.deps.Recorder.Eventf(ds, corev1.EventTypeNormal, specs.EventKerberosApplied,
		"Applied spec.identity.kerberos (principal %s) through the DittoFS API; restarting the pod, DittoFS reads Kerberos settings at startup", k.ServicePrincipal)
	return r.writeSecret(ctx, nil, map[string]string{specs.AnnotationKerberosUpdated: time.Now().UTC().Format(time.RFC3339Nano)})
}
