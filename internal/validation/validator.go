// Package validation checks a DittoServer against the cluster: StorageClasses, the Percona CRD,
// referenced Secrets, ports and fields that have no effect. The optional validating webhook and
// the Go controller's guard call the same Validate, so a cluster without webhooks gets the same
// answer as a condition and an event.
package validation

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// Findings is the outcome of validating a DittoServer against the cluster: errors block the
// server, warnings are reported and do not.
type Findings struct {
	Errors   []string
	Warnings []string
	// PerconaCRDMissing marks the error about the missing Percona CRD. The webhook rejects it
	// like any error; the reconciler reports it as DatabaseReady=False (PerconaCRDMissing) and
	// waits for the CRD instead (see PerconaCRDMissingMessage).
	PerconaCRDMissing bool
	// PostgresSecretIgnored is set when spec.database.postgresSecretRef loses to Percona.
	PostgresSecretIgnored bool
	// Render is the error of the chart render (spec.chartValues), also in Errors.
	Render *specs.Problem
}

// PerconaCRDMissingMessage is the finding (and condition message) for a server with Percona
// enabled in a cluster without the Percona operator.
const PerconaCRDMissingMessage = "spec.percona.enabled is true but the Percona PostgreSQL operator is not installed (no PerconaPGCluster kind in pgv2.percona.com/v2); install it first (see docs/PERCONA.md) or set spec.percona.enabled to false"

// PostgresSecretIgnoredMessage is the warning for a postgresSecretRef that Percona overrides.
const PostgresSecretIgnoredMessage = "spec.database.postgresSecretRef is ignored while spec.percona.enabled is true: the server uses the Percona cluster; remove one of them"

// Blocking is the Problem that keeps the server from rolling out: every error, as one
// InvalidSpec message. A missing Percona CRD alone does not block (the reconciler reports it as
// DatabaseReady=False and waits for the CRD); with other errors it is listed with them.
func (f Findings) Blocking() *specs.Problem {
	waited := 0
	if f.PerconaCRDMissing {
		waited = 1
	}
	switch {
	case len(f.Errors) <= waited:
		return nil
	case f.Render != nil && len(f.Errors) == waited+1:
		return f.Render // the chart does not render: RenderFailed, as the Helm reconciler says
	}
	return &specs.Problem{Reason: specs.ReasonInvalidSpec, Message: strings.Join(f.Errors, "; ")}
}

// Validator runs the checks that need cluster state. The validating webhook and the
// reconciler's guard call the same Validate, so both give the same answer.
type Validator struct {
	// Reader reads StorageClasses (cluster-scoped; the cache) and Secrets (the API reader).
	Reader       client.Reader
	SecretReader client.Reader
	// Mapper answers whether the Percona CRD is installed. A meta.ResettableRESTMapper is reset
	// on a miss, so a CRD installed after the operator started is seen.
	Mapper meta.RESTMapper
	// Renderer renders the chart as the Helm reconciler will: spec.chartValues the chart refuses
	// are refused before anything rolls out. nil skips the render.
	Renderer *specs.Renderer
}

// Validate checks ds. It never returns a Secret's value in a message.
func (v *Validator) Validate(ctx context.Context, ds *v1alpha1.DittoServer) (Findings, error) {
	var f Findings
	s := &ds.Spec

	if sc := s.Storage.StorageClassName; sc != nil && *sc != "" {
		if err := v.storageClassExists(ctx, "spec.storage.storageClassName", *sc, &f); err != nil {
			return f, err
		}
	}
	if p := s.Percona; p != nil && p.Enabled {
		if sc := p.StorageClassName; sc != nil && *sc != "" {
			if err := v.storageClassExists(ctx, "spec.percona.storageClassName", *sc, &f); err != nil {
				return f, err
			}
		}
		installed, err := v.PerconaInstalled()
		if err != nil {
			return f, err
		}
		if !installed {
			f.Errors = append(f.Errors, PerconaCRDMissingMessage)
			f.PerconaCRDMissing = true
		}
		if s.Database != nil && s.Database.PostgresSecretRef != nil {
			f.Warnings = append(f.Warnings, PostgresSecretIgnoredMessage)
			f.PostgresSecretIgnored = true
		}
	}

	if err := v.checkSecrets(ctx, ds, &f); err != nil {
		return f, err
	}
	if err := v.checkBackupCredentials(ctx, ds, &f); err != nil {
		return f, err
	}
	if v.Renderer != nil {
		// Only a Problem is the spec's fault; another error (watches.yaml overrideValues) is
		// the operator's configuration and reported by the reconcile.
		if _, err := v.Renderer.Render(ds); err != nil {
			if p, ok := specs.AsProblem(err); ok {
				f.Errors = append(f.Errors, p.Message)
				f.Render = p
			}
		}
	}

	f.Errors = append(f.Errors, privilegeErrors(s)...)
	f.Errors = append(f.Errors, reservedPodFields(s)...)
	for _, p := range privilegedPorts(s) {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s is %d, below 1024: the DittoFS container runs as a non-root user without capabilities and may not be able to bind it; prefer a port above 1023", p.field, p.port))
	}
	f.Warnings = append(f.Warnings, NoEffectFields(s)...)
	if m := s.Metrics; m != nil && !s.MetricsEnabled() && m.ServiceMonitor != nil && m.ServiceMonitor.Enabled {
		f.Warnings = append(f.Warnings, "spec.metrics.serviceMonitor.enabled has no effect while spec.metrics.enabled is false: there is no -metrics Service to scrape; enable metrics or remove it")
	}
	if s.S3 != nil && s.Storage.ContentSize != "" {
		f.Warnings = append(f.Warnings, "spec.storage.contentSize has no use with spec.s3: the files live in the bucket and the cache volume (spec.storage.cacheSize) holds the local tier; no content volume is made for a new server")
	}
	return f, nil
}

func (v *Validator) storageClassExists(ctx context.Context, field, name string, f *Findings) error {
	err := v.Reader.Get(ctx, types.NamespacedName{Name: name}, &storagev1.StorageClass{})
	if apierrors.IsNotFound(err) {
		f.Errors = append(f.Errors, fmt.Sprintf("%s: StorageClass %q does not exist; create it or pick one of `kubectl get storageclass`", field, name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading StorageClass %s: %w", name, err)
	}
	return nil
}

// PerconaInstalled reports whether the API server serves the PerconaPGCluster kind.
func (v *Validator) PerconaInstalled() (bool, error) {
	return KindServed(v.Mapper, specs.PerconaGVK)
}

// KindServed reports whether the API server serves gvk (its CRD is installed). The manager's
// REST mapper discovers a group installed after it started on the next lookup.
func KindServed(mapper meta.RESTMapper, gvk schema.GroupVersionKind) (bool, error) {
	_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		return true, nil
	}
	if meta.IsNoMatchError(err) {
		return false, nil
	}
	return false, fmt.Errorf("looking up the %s kind: %w", gvk.Kind, err)
}

// checkSecrets warns about referenced Secrets or keys that do not exist (yet): tools such as
// external-secrets or Vault create them after the DittoServer.
func (v *Validator) checkSecrets(ctx context.Context, ds *v1alpha1.DittoServer, f *Findings) error {
	type ref struct{ field, name, key string }
	var refs []ref
	s := &ds.Spec
	if id := s.Identity; id != nil {
		if id.JWT != nil && id.JWT.SecretRef != nil {
			refs = append(refs, ref{"spec.identity.jwt.secretRef", id.JWT.SecretRef.Name, id.JWT.SecretRef.Key})
		}
		if id.Admin != nil && id.Admin.PasswordSecretRef != nil {
			refs = append(refs, ref{"spec.identity.admin.passwordSecretRef", id.Admin.PasswordSecretRef.Name, id.Admin.PasswordSecretRef.Key})
		}
		if l := id.LDAP; l != nil {
			refs = append(refs, ref{"spec.identity.ldap.bindPasswordSecretRef", l.BindPasswordSecretRef.Name, l.BindPasswordSecretRef.Key})
			if l.CASecretRef != nil {
				refs = append(refs, ref{"spec.identity.ldap.caSecretRef", l.CASecretRef.Name, l.CASecretRef.Key})
			}
		}
		if k := id.Kerberos; k != nil && k.IsEnabled() {
			refs = append(refs, ref{"spec.identity.kerberos.keytabSecretRef", k.KeytabSecretRef.Name, k.KeytabSecretRef.Key},
				ref{"spec.identity.kerberos.krb5ConfKey", k.KeytabSecretRef.Name, k.Krb5ConfKeyOrDefault()})
		}
	}
	if s.Database != nil && s.Database.PostgresSecretRef != nil {
		refs = append(refs, ref{"spec.database.postgresSecretRef", s.Database.PostgresSecretRef.Name, s.Database.PostgresSecretRef.Key})
	}
	if t := s.MetricsTokenRef(); t != nil {
		refs = append(refs, ref{"spec.metrics.bearerTokenSecretRef", t.Name, t.Key})
	}
	if s.APITLSMode() == v1alpha1.APITLSSecret {
		name := s.ControlPlane.TLS.SecretName
		refs = append(refs, ref{"spec.controlPlane.tls.secretName", name, specs.APITLSCert}, ref{"spec.controlPlane.tls.secretName", name, specs.APITLSKey})
	}
	if s.S3 != nil && s.S3.CredentialsSecretRef != nil {
		r := s.S3.CredentialsSecretRef
		refs = append(refs, ref{"spec.s3.credentialsSecretRef", r.SecretName, r.AccessKeyIDKey}, ref{"spec.s3.credentialsSecretRef", r.SecretName, r.SecretAccessKeyKey})
	}
	for _, r := range refs {
		secret := &corev1.Secret{}
		err := v.SecretReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: r.name}, secret)
		if apierrors.IsNotFound(err) {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s: Secret %s does not exist yet; the server starts once it does", r.field, r.name))
			continue
		}
		if err != nil {
			return fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, r.name, err)
		}
		value, ok := secret.Data[r.key]
		if r.key != "" && !ok {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s: Secret %s has no key %q yet", r.field, r.name, r.key))
			continue
		}
		if r.field == "spec.identity.jwt.secretRef" && len(strings.TrimSpace(string(value))) < specs.JWTSecretMinLength {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s: Secret %s key %q holds fewer than %d characters; DittoFS refuses to start with it", r.field, r.name, r.key, specs.JWTSecretMinLength))
		}
	}
	return nil
}

// checkBackupCredentials checks the pgBackRest Secret of Percona backups: missing is a warning
// (it may be created later); present without the S3 key options is an error (backups would fail).
func (v *Validator) checkBackupCredentials(ctx context.Context, ds *v1alpha1.DittoServer, f *Findings) error {
	p := ds.Spec.Percona
	if p == nil || !p.Enabled || p.Backup == nil || !p.Backup.Enabled || p.Backup.CredentialsSecretRef == nil {
		return nil
	}
	const field = "spec.percona.backup.credentialsSecretRef"
	name := p.Backup.CredentialsSecretRef.Name
	secret := &corev1.Secret{}
	err := v.SecretReader.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: name}, secret)
	if apierrors.IsNotFound(err) {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s: Secret %s does not exist yet; backups start once it does", field, name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s/%s: %w", ds.Namespace, name, err)
	}
	for _, value := range secret.Data {
		if ini := string(value); strings.Contains(ini, specs.PerconaBackupRepo+"-s3-key=") && strings.Contains(ini, specs.PerconaBackupRepo+"-s3-key-secret=") {
			return nil
		}
	}
	f.Errors = append(f.Errors, fmt.Sprintf("%s: Secret %s has no pgBackRest S3 key: one of its keys must hold an ini file with %s-s3-key= and %s-s3-key-secret= in its [global] section (see docs/PERCONA.md)",
		field, name, specs.PerconaBackupRepo, specs.PerconaBackupRepo))
	return nil
}

type portField struct {
	field string
	port  int32
}

// reservedPodFields refuses pod labels, annotations and env the operator owns: its labels
// select the pod, its annotations roll it, and DittoFS reads every DITTOFS_* variable as its
// configuration, which the spec and spec.chartValues.config own.
func reservedPodFields(s *v1alpha1.DittoServerSpec) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.PodLabels)) {
		if slices.Contains(specs.OperatorPodLabelKeys, k) {
			out = append(out, fmt.Sprintf("spec.podLabels: %q is set by the operator (it selects the server's pod); remove it or use another key", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.PodAnnotations)) {
		if strings.HasPrefix(k, specs.OperatorAnnotationPrefix) {
			out = append(out, fmt.Sprintf("spec.podAnnotations: %q is under %s, which the operator owns; remove it or use another prefix", k, specs.OperatorAnnotationPrefix))
		}
	}
	for i, e := range s.Env {
		if specs.ReservedEnvName(e.Name) {
			out = append(out, fmt.Sprintf("spec.env[%d].name: %q is the operator's or DittoFS configuration (DITTOFS_*); set DittoFS settings with the spec's fields or spec.chartValues.config, and remove it", i, e.Name))
		}
	}
	return out
}

// privilegeErrors refuses the security-context settings Pod Security "restricted" forbids: the
// DittoFS container needs no privilege, no capability and no root user, and a pod that asks for
// them would be refused by a restricted namespace anyway, after the rollout started.
func privilegeErrors(s *v1alpha1.DittoServerSpec) []string {
	const fix = `the DittoFS container runs unprivileged, as a non-root user without capabilities (Pod Security "restricted"); remove it`
	var out []string
	if c := s.SecurityContext; c != nil {
		if c.Privileged != nil && *c.Privileged {
			out = append(out, "spec.securityContext.privileged: is true; "+fix)
		}
		if c.AllowPrivilegeEscalation != nil && *c.AllowPrivilegeEscalation {
			out = append(out, "spec.securityContext.allowPrivilegeEscalation: is true; "+fix)
		}
		if c.Capabilities != nil && len(c.Capabilities.Add) > 0 {
			out = append(out, fmt.Sprintf("spec.securityContext.capabilities.add: adds %v; %s", c.Capabilities.Add, fix))
		}
		if c.RunAsUser != nil && *c.RunAsUser == 0 {
			out = append(out, "spec.securityContext.runAsUser: is 0 (root); "+fix)
		}
		if c.RunAsNonRoot != nil && !*c.RunAsNonRoot {
			out = append(out, "spec.securityContext.runAsNonRoot: is false; "+fix)
		}
	}
	if c := s.PodSecurityContext; c != nil {
		if c.RunAsUser != nil && *c.RunAsUser == 0 {
			out = append(out, "spec.podSecurityContext.runAsUser: is 0 (root); "+fix)
		}
		if c.RunAsNonRoot != nil && !*c.RunAsNonRoot {
			out = append(out, "spec.podSecurityContext.runAsNonRoot: is false; "+fix)
		}
	}
	return out
}

// privilegedPorts lists the container ports below 1024 (the Service ports nfsPort and smb.port
// map to the adapters' fixed unprivileged ports, so they may be low).
func privilegedPorts(s *v1alpha1.DittoServerSpec) []portField {
	var out []portField
	if p := s.APIPort(); p < 1024 {
		out = append(out, portField{"spec.controlPlane.port", p})
	}
	if s.MetricsEnabled() && s.MetricsPort() < 1024 {
		out = append(out, portField{"spec.metrics.port", s.MetricsPort()})
	}
	return out
}

// NoEffectFields names the fields accepted for compatibility with earlier versions of the API
// that DittoFS v0.29.0 has no setting for. spec.smb.maxConnections is not one: it maps to the
// SMB adapter's max_connections setting; the other SMB tuning fields have no matching setting
// (the v0.29.0 SMB settings are dialects, session/oplock timeouts, max_connections,
// max_sessions, encryption, signing, leasing, blocked operations, discovery).
func NoEffectFields(s *v1alpha1.DittoServerSpec) []string {
	var fields []string
	if s.Cache != nil {
		fields = append(fields, "spec.cache")
	}
	if s.Identity != nil && s.Identity.JWT != nil && s.Identity.JWT.Issuer != "" {
		fields = append(fields, "spec.identity.jwt.issuer")
	}
	if s.AdapterDiscovery != nil {
		fields = append(fields, "spec.adapterDiscovery")
	}
	if smb := s.SMB; smb != nil {
		// spec.smb.maxConnections is applied as the SMB adapter's max_connections setting
		// through the REST API (internal/controlplane).
		if smb.MaxRequestsPerConnection != nil {
			fields = append(fields, "spec.smb.maxRequestsPerConnection")
		}
		if smb.Timeouts != nil {
			fields = append(fields, "spec.smb.timeouts")
		}
		if smb.Credits != nil {
			fields = append(fields, "spec.smb.credits")
		}
		if smb.MetricsLogInterval != "" {
			fields = append(fields, "spec.smb.metricsLogInterval")
		}
	}
	sort.Strings(fields)
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, fmt.Sprintf("%s has no effect on DittoFS v0.29.0 (accepted for compatibility); remove it", f))
	}
	return out
}
