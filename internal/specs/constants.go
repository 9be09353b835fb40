// Package specs holds what the operator builds, as pure functions of a DittoServer and the
// values the controller resolved: names, labels, every annotation, finalizer, env var and
// image, the chart value translation and render, the StatefulSet, the PerconaPGCluster and the
// config hash. Nothing here talks to the API server; each builder has a table or golden test
// beside it.
package specs

// Finalizers, field managers, labels and annotations the operator stamps on objects.
const (
	// Finalizer guards cleanup (Percona orphaning/deletion) before the DittoServer goes away.
	Finalizer = "dittofs.dittofs.com/finalizer"
	// HelmUninstallFinalizer is the Helm reconciler's own finalizer (helm-operator-plugins).
	HelmUninstallFinalizer = "uninstall-helm-release"

	// FieldOwner is the server-side-apply field manager of the Go controller.
	FieldOwner = "dittofs-operator"
	// HelmStatusFieldOwner is the field manager of the Helm reconciler's status writes.
	HelmStatusFieldOwner = "dittofs-operator-helm"

	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"

	// AppName is the app.kubernetes.io/name of the server's pods and Services.
	AppName = "dittofs-server"
	// ManagedBy is the app.kubernetes.io/managed-by value of the objects the Go controller
	// creates (Helm stamps "Helm" on the chart's objects).
	ManagedBy = "dittofs-operator"
	// PartOf is the app.kubernetes.io/part-of value of every object the operator makes; the
	// manager's cache only holds Secrets, ConfigMaps, Services and StatefulSets with it.
	PartOf = "dittofs"

	// AnnotationConfigHash on the pod template rolls the pod when config or Secrets change.
	AnnotationConfigHash = "dittofs.dittofs.com/config-hash"
	// AnnotationSpecHash on the StatefulSet and the PerconaPGCluster records the desired
	// content the operator last applied, so an unchanged object costs no write.
	AnnotationSpecHash = "dittofs.dittofs.com/spec-hash"
	// AnnotationRemoteStoreUpdated (on the operator Secret and the pod template) is the time the
	// operator last updated a store of running shares through the API (the S3 store, the local
	// store's size). DittoFS v0.29.0 keeps using the stores it built for a running share, so a
	// changed store (credential rotation) takes effect only after the pod restarts: changing
	// this annotation restarts it. (The name predates the local store.)
	AnnotationRemoteStoreUpdated = "dittofs.dittofs.com/remote-store-updated"
	// AnnotationS3ConfigHash on the operator Secret is the hash of the S3 store configuration
	// last sent (the server redacts the secret key on reads, so a rotation is seen here).
	AnnotationS3ConfigHash = "dittofs.dittofs.com/s3-config-hash"
	// AnnotationManagedShares on the operator Secret lists the shares the operator created
	// (comma-separated); only those are ever pruned.
	AnnotationManagedShares = "dittofs.dittofs.com/managed-shares"
	// AnnotationManagedSnapshotPolicies on the operator Secret lists the shares whose snapshot
	// policy the operator created (comma-separated); only those are ever deleted.
	AnnotationManagedSnapshotPolicies = "dittofs.dittofs.com/managed-snapshot-policies"
	// AnnotationLocalStore on the operator Secret is "<volume>:<max_size>" of the local block
	// store as last sized by the operator.
	AnnotationLocalStore = "dittofs.dittofs.com/local-store"
	// AnnotationAdminPassword on the operator Secret identifies the admin password the server
	// has (an HMAC keyed with the operator's own password, so it reveals nothing without that
	// Secret's data): a new value in the admin Secret is set through the REST API.
	AnnotationAdminPassword = "dittofs.dittofs.com/admin-password"
	// AnnotationLDAP on the operator Secret identifies the LDAP configuration the operator last
	// applied, bind password included (an HMAC keyed like AnnotationAdminPassword): a new
	// password in the Secret is sent, and a directory the operator never configured is never
	// disabled by it.
	AnnotationLDAP = "dittofs.dittofs.com/ldap"
	// AnnotationKerberosUpdated (on the operator Secret and the pod template) is the time the
	// operator last wrote the server's Kerberos settings through the API: DittoFS reads them
	// at startup only, so a new value restarts the pod.
	AnnotationKerberosUpdated = "dittofs.dittofs.com/kerberos-updated"
	// AnnotationOperator on the StatefulSet identifies the operator that last wrote it: its
	// build and the operator-wide settings that change every server's rendering. A template
	// change on a StatefulSet of another identity waits for a rollout slot
	// (--max-concurrent-rollouts).
	AnnotationOperator = "dittofs.dittofs.com/operator"
)

// The DittoFS v0.29.0 container (docs/ARCHITECTURE.md, "The DittoFS contract").
const (
	ContainerName   = "dittofs"
	DittoFSBinary   = "/app/dfs"
	ConfigMountPath = "/config"
	ConfigFileName  = "config.yaml"
	// NFSAdapterPort and SMBAdapterPort are where the server's default adapters listen; the
	// Services map spec.nfsPort and spec.smb.port to them.
	NFSAdapterPort = 12049
	SMBAdapterPort = 1445
	DittoFSUID     = 65532

	// Shutdown budget: dfs exits by itself after 3*shutdown_timeout+5s; the preStop sleep
	// comes first. The grace period covers both with a margin.
	ShutdownTimeoutSeconds = 30
	PreStopSleepSeconds    = 5
)

// Volumes (claim templates) and where they are mounted.
const (
	VolumeControlPlane = "controlplane"
	VolumeMetadata     = "metadata"
	VolumeCache        = "cache"
	VolumeContent      = "content"
	VolumeConfig       = "config"
	VolumeTmp          = "tmp"
	// VolumeMetricsToken is spec.metrics.bearerTokenSecretRef's key, mounted as a file (DittoFS
	// reads the token from metrics.token_file at boot).
	VolumeMetricsToken = "metrics-token"

	ControlPlaneMountPath = "/data/controlplane"
	MetadataMountPath     = "/data/metadata"
	CacheMountPath        = "/data/cache"
	ContentMountPath      = "/data/content"
	TmpMountPath          = "/tmp"
	MetricsTokenMountPath = "/var/run/dittofs/metrics-token"
	MetricsTokenFile      = MetricsTokenMountPath + "/token"

	// VolumeLDAPCA is spec.identity.ldap.caSecretRef's key, the CA bundle DittoFS verifies the
	// directory's certificate with.
	VolumeLDAPCA    = "ldap-ca"
	LDAPCAMountPath = "/var/run/dittofs/ldap-ca"
	LDAPCAFile      = LDAPCAMountPath + "/ca.crt"
	// VolumeKerberos holds the keytab (and krb5.conf) of spec.identity.kerberos. The paths are
	// fixed: DittoFS lets the config file's paths win over the ones in its database.
	VolumeKerberos     = "kerberos"
	KerberosMountPath  = "/var/run/dittofs/kerberos"
	KerberosKeytabFile = KerberosMountPath + "/krb5.keytab"
	KerberosKrb5Conf   = KerberosMountPath + "/krb5.conf"
)

// Keys of the Secrets the operator generates, and the user DittoFS bootstraps.
const (
	JWTSecretKey       = "secret"
	AdminUsernameKey   = "username"
	AdminPasswordKey   = "password"
	DefaultAdminUser   = "admin"
	JWTSecretMinLength = 32
)

// Env names DittoFS v0.29.0 reads (viper: DITTOFS_<PATH>).
const (
	EnvJWTSecret        = "DITTOFS_CONTROLPLANE_SECRET"
	EnvAdminPassword    = "DITTOFS_ADMIN_INITIAL_PASSWORD"
	EnvPostgresHost     = "DITTOFS_DATABASE_POSTGRES_HOST"
	EnvPostgresPort     = "DITTOFS_DATABASE_POSTGRES_PORT"
	EnvPostgresDatabase = "DITTOFS_DATABASE_POSTGRES_DATABASE"
	EnvPostgresUser     = "DITTOFS_DATABASE_POSTGRES_USER"
	EnvPostgresPassword = "DITTOFS_DATABASE_POSTGRES_PASSWORD"
	EnvPostgresSSLMode  = "DITTOFS_DATABASE_POSTGRES_SSLMODE"
	// EnvPostgresSSLRootCert is database.postgres.ssl_root_cert: the CA file sslmode
	// verify-full checks the server's certificate against.
	EnvPostgresSSLRootCert = "DITTOFS_DATABASE_POSTGRES_SSL_ROOT_CERT"
)

// Images and the OLM related-image env vars that override them.
const (
	// EnvRelatedImage overrides the default DittoFS image.
	EnvRelatedImage = "RELATED_IMAGE_DITTOFS"
	// DefaultPostgresClientImage runs the wait-for-postgres init container: it has sh, date
	// and pg_isready on the PATH and runs as any uid.
	DefaultPostgresClientImage    = "docker.io/library/postgres:17-alpine"
	EnvRelatedImagePostgresClient = "RELATED_IMAGE_POSTGRES_CLIENT"
	// Default images of new Percona clusters (Percona v2.9.0 release set,
	// e2e-tests/release_versions). Percona's operator deployment sets no
	// RELATED_IMAGE_POSTGRES_*, so a cluster without an image never starts
	// (MissingRequiredImage). Like crVersion they are set at creation only.
	DefaultPerconaPostgresImage      = "docker.io/percona/percona-distribution-postgresql:17.9-1"
	DefaultPerconaPGBackRestImage    = "docker.io/percona/percona-pgbackrest:2.58.0-1"
	EnvRelatedImagePerconaPostgres   = "RELATED_IMAGE_PERCONA_POSTGRESQL"
	EnvRelatedImagePerconaPGBackRest = "RELATED_IMAGE_PERCONA_PGBACKREST"
)

// What the operator creates in the server's control plane through the REST API
// (docs/CONTROLPLANE.md).
const (
	// OperatorUsername is the DittoFS user the operator works as.
	OperatorUsername = "dittofs-operator"
	// OperatorRole: every call the operator makes (users, stores, shares, adapter updates and
	// settings) requires the admin role in v0.29.0; "operator" may only list adapters.
	OperatorRole = "admin"
	// OperatorSecretKeyUsername and OperatorSecretKeyPassword are the keys of
	// <name>-operator-credentials.
	OperatorSecretKeyUsername = "username"
	OperatorSecretKeyPassword = "password"
	// S3StoreName is the remote block store made from spec.s3.
	S3StoreName = "s3"
	// DefaultMetadataStoreName and DefaultLocalStoreName back the shares the operator creates.
	DefaultMetadataStoreName = "default"
	DefaultLocalStoreName    = "default"
	// DefaultShareName is the share created when spec.shares is unset.
	DefaultShareName = "/export"
	// DefaultSharePermission is the permission for users without a grant of a share the
	// operator creates without spec.shares[].defaultPermission: read, so that writing needs a
	// grant or a permission the spec states. A share that exists keeps its permission unless
	// the spec states one (servers from before this default keep read-write).
	DefaultSharePermission = "read"
)
