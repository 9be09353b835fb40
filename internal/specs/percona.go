package specs

import (
	"fmt"
	"path"
	"strconv"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	crunchyv1beta1 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/postgres-operator.crunchydata.com/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// PerconaGVK is the PostgreSQL cluster kind of the Percona operator.
var PerconaGVK = schema.GroupVersionKind{Group: "pgv2.percona.com", Version: "v2", Kind: "PerconaPGCluster"}

// The Percona PostgreSQL operator contract (docs/PERCONA.md).
const (
	// PerconaCRVersion is the crVersion of the clusters we create. It must match the installed
	// Percona operator (v2.9.0); it is set at creation only, so a user who upgrades the Percona
	// operator and bumps crVersion is never reverted.
	PerconaCRVersion = "2.9.0"
	// PerconaPostgresVersion is the PostgreSQL major of new clusters: 17, the newest major that
	// Percona v2.9.0 ships and DittoFS v0.29.0 is tested with. Set at creation only (a major
	// upgrade goes through Percona's PerconaPGUpgrade, never through us).
	PerconaPostgresVersion = 17
	// PerconaUser is the PostgreSQL user DittoFS connects as; Percona stores its credentials in
	// the Secret <cluster>-pguser-<user>.
	PerconaUser = "dittofs"
	// PerconaInstanceSet is the name of the single instance set.
	PerconaInstanceSet = "instance1"
	// PerconaBackupRepo is the pgBackRest repository we configure.
	PerconaBackupRepo = "repo1"
	// PerconaCRDName is the CustomResourceDefinition whose presence the operator watches.
	PerconaCRDName = "perconapgclusters.pgv2.percona.com"
	// PerconaStateReady is status.state of a cluster that accepts connections.
	PerconaStateReady = string(pgv2.AppStateReady)
)

// PerconaEnvKeys maps each PostgreSQL env var to the key of the Percona user Secret (its uri key
// is not read: DittoFS reads no URI).
var PerconaEnvKeys = []struct{ Env, Key string }{
	{EnvPostgresHost, "host"},
	{EnvPostgresPort, "port"},
	{EnvPostgresDatabase, "dbname"},
	{EnvPostgresUser, "user"},
	{EnvPostgresPassword, "password"},
}

// A server on Percona connects with spec.percona.sslMode: Percona clusters accept only TLS
// connections (pg_hba "hostssl ... scram-sha-256") and DittoFS defaults sslmode to "disable".
// verify-full (the default) trusts the CA Percona keeps in <cluster>-cluster-cert, whose
// certificate names the primary Service (the host of the user Secret); require encrypts
// without that check.
const (
	PerconaCAKey        = "ca.crt"
	VolumePostgresCA    = "postgres-ca"
	PostgresCAMountPath = "/var/run/dittofs/postgres-ca"
)

// PerconaCASecretName is the Secret where Percona keeps the cluster's certificate and its CA.
func PerconaCASecretName(ds *v1alpha1.DittoServer) string {
	return PerconaClusterName(ds) + "-cluster-cert"
}

// PerconaVerifiesCA reports whether the server checks the Percona cluster's certificate.
func PerconaVerifiesCA(ds *v1alpha1.DittoServer) bool {
	return ds.Spec.PerconaEnabled() && ds.Spec.PerconaSSLMode() == v1alpha1.PerconaSSLVerifyFull
}

// PerconaBackupRepoPath is repo1's path in the bucket: one directory per cluster, so that
// several servers can share a bucket without mixing their backups.
func PerconaBackupRepoPath(ds *v1alpha1.DittoServer) string {
	return path.Join("/pgbackrest", ds.Namespace, PerconaClusterName(ds), PerconaBackupRepo)
}

// DesiredPerconaCluster builds the PerconaPGCluster of a DittoServer. It is a pure function of
// its inputs and holds only the fields the operator owns (server-side apply: every other field
// belongs to whoever set it). The owner reference is added by the caller.
func DesiredPerconaCluster(in *v1alpha1.DittoServer, images PerconaImages) *pgv2.PerconaPGCluster {
	ds := in.DeepCopy()
	if ds.Spec.Percona == nil {
		ds.Spec.Percona = &v1alpha1.PerconaSpec{}
	}
	ds.Default()
	p := ds.Spec.Percona

	cluster := &pgv2.PerconaPGCluster{
		TypeMeta: metav1.TypeMeta{APIVersion: pgv2.GroupVersion.String(), Kind: PerconaGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      PerconaClusterName(ds),
			Namespace: ds.Namespace,
			Labels:    CommonLabels(ds, "database"),
		},
		Spec: pgv2.PerconaPGClusterSpec{
			CRVersion:       PerconaCRVersion,
			Image:           images.Postgres,
			PostgresVersion: PerconaPostgresVersion,
			InstanceSets: pgv2.PGInstanceSets{{
				Name:     PerconaInstanceSet,
				Replicas: ptr.To(*p.Replicas),
				DataVolumeClaimSpec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: p.StorageClassName,
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(p.StorageSize)},
					},
				},
			}},
			Users: []crunchyv1beta1.PostgresUserSpec{{
				Name:      crunchyv1beta1.PostgresIdentifier(PerconaUser),
				Databases: []crunchyv1beta1.PostgresIdentifier{crunchyv1beta1.PostgresIdentifier(p.DatabaseName)},
			}},
			// A schema named after the user, owned by it, in each of its databases: since
			// PostgreSQL 15 a non-owner cannot create tables in "public", and DittoFS creates
			// its tables at first boot. ("$user" comes first in the default search_path.)
			AutoCreateUserSchema: ptr.To(true),
			Backups:              desiredBackups(ds, images),
		},
	}
	return cluster
}

// desiredBackups is backups.enabled=false when backups are off (a nil enabled means true to
// Percona, and a cluster without a repository then fails), else pgBackRest repo1 on S3.
func desiredBackups(ds *v1alpha1.DittoServer, images PerconaImages) pgv2.Backups {
	b := ds.Spec.Percona.Backup
	if b == nil || !b.Enabled {
		return pgv2.Backups{Enabled: ptr.To(false)}
	}
	retention := ptr.Deref(b.RetentionDays, v1alpha1.DefaultRetentionDays)
	out := pgv2.Backups{
		Enabled: ptr.To(true),
		PGBackRest: pgv2.PGBackRestArchive{
			Image: images.PGBackRest,
			Global: map[string]string{
				PerconaBackupRepo + "-path": PerconaBackupRepoPath(ds),
				// Full backups (and the incrementals that depend on them) older than
				// retentionDays are expired.
				PerconaBackupRepo + "-retention-full":      strconv.Itoa(int(retention)),
				PerconaBackupRepo + "-retention-full-type": "time",
				// Path-style URLs work with every S3 implementation (MinIO, Ceph, ...).
				PerconaBackupRepo + "-s3-uri-style": "path",
			},
			Repos: []crunchyv1beta1.PGBackRestRepo{{
				Name: PerconaBackupRepo,
				S3:   &crunchyv1beta1.RepoS3{Bucket: b.Bucket, Endpoint: b.Endpoint, Region: b.Region},
				BackupSchedules: &crunchyv1beta1.PGBackRestBackupSchedules{
					Full:        ptr.To(b.FullSchedule),
					Incremental: ptr.To(b.IncrSchedule),
				},
			}},
		},
	}
	if ref := b.CredentialsSecretRef; ref != nil && ref.Name != "" {
		// Percona mounts each projected Secret under /etc/pgbackrest/conf.d: the Secret holds a
		// pgBackRest ini file (e.g. key s3.conf with repo1-s3-key and repo1-s3-key-secret in
		// its [global] section), see docs/PERCONA.md.
		out.PGBackRest.Configuration = []corev1.VolumeProjection{{
			Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: ref.Name}},
		}}
	}
	return out
}

// PerconaApplyObject turns the typed cluster into the object to server-side-apply: the Go
// types marshal empty structs and nil slices (e.g. "secrets": {}, "repos": null), which would
// make the operator own fields it never meant to set, so empty maps and nulls are pruned.
func PerconaApplyObject(cluster *pgv2.PerconaPGCluster) (*unstructured.Unstructured, error) {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cluster)
	if err != nil {
		return nil, fmt.Errorf("converting PerconaPGCluster %s: %w", cluster.Name, err)
	}
	delete(obj, "status")
	pruned, _ := pruneEmpty(obj).(map[string]any)
	u := &unstructured.Unstructured{Object: pruned}
	u.SetGroupVersionKind(PerconaGVK)
	return u, nil
}

// pruneEmpty removes nil values and maps that are empty once pruned. Scalars (false, 0, "")
// and lists are kept as they are: they were set on purpose.
func pruneEmpty(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range t {
			p := pruneEmpty(val)
			if p == nil {
				continue
			}
			if m, ok := p.(map[string]any); ok && len(m) == 0 {
				continue
			}
			out[k] = p
		}
		return out
	case []any:
		out := make([]any, 0, len(t))
		for _, val := range t {
			out = append(out, pruneEmpty(val))
		}
		return out
	default:
		return v
	}
}

// KeepCreationFields copies the fields that are set at creation only (crVersion, the PostgreSQL
// major, the images) from the live cluster into desired: a Percona upgrade changes them, and
// the operator must not revert it.
func KeepCreationFields(desired, live *pgv2.PerconaPGCluster) {
	if live.Spec.CRVersion != "" {
		desired.Spec.CRVersion = live.Spec.CRVersion
	}
	if live.Spec.PostgresVersion != 0 {
		desired.Spec.PostgresVersion = live.Spec.PostgresVersion
	}
	if live.Spec.Image != "" {
		desired.Spec.Image = live.Spec.Image
	}
	if desired.Spec.Backups.PGBackRest.Image != "" && live.Spec.Backups.PGBackRest.Image != "" {
		desired.Spec.Backups.PGBackRest.Image = live.Spec.Backups.PGBackRest.Image
	}
}
