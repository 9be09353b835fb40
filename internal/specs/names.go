package specs

import (
	"fmt"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Names of the objects of a DittoServer. The chart names the ConfigMap and the Services it
// renders the same way (<release>-config, <release>-headless, ...; the release is the server).
func ConfigMapName(ds *v1alpha1.DittoServer) string       { return ds.Name + "-config" }
func HeadlessServiceName(ds *v1alpha1.DittoServer) string { return ds.Name + "-headless" }
func FileServiceName(ds *v1alpha1.DittoServer) string     { return ds.Name + "-file" }
func JWTSecretName(ds *v1alpha1.DittoServer) string       { return ds.Name + "-jwt-secret" }
func AdminSecretName(ds *v1alpha1.DittoServer) string     { return ds.Name + "-admin-credentials" }
func PostgresEnvSecretName(ds *v1alpha1.DittoServer) string {
	return ds.Name + "-db-credentials"
}

// OperatorSecretName is the Secret with the operator account's credentials.
func OperatorSecretName(ds *v1alpha1.DittoServer) string { return ds.Name + "-operator-credentials" }

// PodName is the name of the server's pod with the given ordinal (the StatefulSet is named
// after the server).
func PodName(ds *v1alpha1.DittoServer, ordinal int) string {
	return fmt.Sprintf("%s-%d", ds.Name, ordinal)
}

// PerconaClusterName is the PerconaPGCluster of a DittoServer.
func PerconaClusterName(ds *v1alpha1.DittoServer) string { return ds.Name + "-postgres" }

// PerconaUserSecretName is the Secret Percona creates with the connection details of PerconaUser
// (keys host, port, dbname, user, password, uri).
func PerconaUserSecretName(ds *v1alpha1.DittoServer) string {
	return PerconaClusterName(ds) + "-pguser-" + PerconaUser
}

// Endpoints are the in-cluster addresses clients use, as status reports them.
type Endpoints struct{ NFS, SMB, API string }

// ServerEndpoints returns the endpoints of ds (SMB only when enabled).
func ServerEndpoints(in *v1alpha1.DittoServer) Endpoints {
	ds := in.DeepCopy()
	ds.Default()
	file := fmt.Sprintf("%s-file.%s.svc", ds.Name, ds.Namespace)
	out := Endpoints{
		NFS: fmt.Sprintf("%s:%d", file, ds.Spec.NFSServicePort()),
		API: fmt.Sprintf("%s-api.%s.svc:%d", ds.Name, ds.Namespace, ds.Spec.APIPort()),
	}
	if ds.Spec.SMBEnabled() {
		out.SMB = fmt.Sprintf("%s:%d", file, ds.Spec.SMBPort())
	}
	return out
}

// SecretKey names one key of a Secret in the DittoServer's namespace.
type SecretKey struct {
	Name string
	Key  string
}

// JWTSecretRef is the Secret key the server's JWT signing key comes from: the user's
// spec.identity.jwt.secretRef, else the generated <name>-jwt-secret.
func JWTSecretRef(ds *v1alpha1.DittoServer) SecretKey {
	if id := ds.Spec.Identity; id != nil && id.JWT != nil && id.JWT.SecretRef != nil {
		return SecretKey{Name: id.JWT.SecretRef.Name, Key: id.JWT.SecretRef.Key}
	}
	return SecretKey{Name: JWTSecretName(ds), Key: JWTSecretKey}
}

// AdminSecretRef is the Secret key of the admin's initial password: the user's
// spec.identity.admin.passwordSecretRef, else the generated <name>-admin-credentials.
func AdminSecretRef(ds *v1alpha1.DittoServer) SecretKey {
	if id := ds.Spec.Identity; id != nil && id.Admin != nil && id.Admin.PasswordSecretRef != nil {
		return SecretKey{Name: id.Admin.PasswordSecretRef.Name, Key: id.Admin.PasswordSecretRef.Key}
	}
	return SecretKey{Name: AdminSecretName(ds), Key: AdminPasswordKey}
}

// ReferencedSecretNames lists the Secrets of the user (and of Percona) a DittoServer reads.
func ReferencedSecretNames(ds *v1alpha1.DittoServer) []string {
	var names []string
	s := &ds.Spec
	if id := s.Identity; id != nil {
		if id.JWT != nil && id.JWT.SecretRef != nil {
			names = append(names, id.JWT.SecretRef.Name)
		}
		if id.Admin != nil && id.Admin.PasswordSecretRef != nil {
			names = append(names, id.Admin.PasswordSecretRef.Name)
		}
		if l := id.LDAP; l != nil {
			names = append(names, l.BindPasswordSecretRef.Name) // a new password is sent at once
			if l.CASecretRef != nil {
				names = append(names, l.CASecretRef.Name)
			}
		}
		if k := id.Kerberos; k != nil {
			names = append(names, k.KeytabSecretRef.Name) // a new keytab restarts the pod
		}
	}
	if s.Database != nil && s.Database.PostgresSecretRef != nil {
		names = append(names, s.Database.PostgresSecretRef.Name)
	}
	if s.S3 != nil && s.S3.CredentialsSecretRef != nil {
		names = append(names, s.S3.CredentialsSecretRef.SecretName)
	}
	if t := s.MetricsTokenRef(); t != nil {
		names = append(names, t.Name)
	}
	if s.APITLSMode() == v1alpha1.APITLSSecret {
		names = append(names, s.ControlPlane.TLS.SecretName)
	}
	if s.PerconaEnabled() {
		// Created by the Percona operator: its appearance and password rotations reconcile.
		names = append(names, PerconaUserSecretName(ds))
		if PerconaVerifiesCA(ds) {
			names = append(names, PerconaCASecretName(ds)) // its CA, read at boot
		}
	}
	return names
}

// ReferencedStorageClasses lists the StorageClasses a DittoServer names.
func ReferencedStorageClasses(ds *v1alpha1.DittoServer) []string {
	var out []string
	if sc := ds.Spec.Storage.StorageClassName; sc != nil && *sc != "" {
		out = append(out, *sc)
	}
	if p := ds.Spec.Percona; p != nil && p.StorageClassName != nil && *p.StorageClassName != "" {
		out = append(out, *p.StorageClassName)
	}
	return out
}

// S3Configured reports whether spec.s3 asks for a remote block store.
func S3Configured(ds *v1alpha1.DittoServer) bool { return ds.Spec.S3 != nil && ds.Spec.S3.Bucket != "" }
