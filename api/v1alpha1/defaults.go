package v1alpha1

// Defaults. The CRD carries the same values as +kubebuilder:default markers; a test compares
// what the API server defaults with what Default produces, so the two cannot drift.
const (
	DefaultImage                  = "marmos91c/dittofs:v0.29.0"
	DefaultReplicas         int32 = 1
	DefaultCacheSize              = "5Gi"
	DefaultControlPlaneSize       = "1Gi"
	DefaultDatabaseType           = "sqlite"
	DefaultSQLitePath             = "/data/controlplane/controlplane.db"
	DefaultCachePath              = "/data/cache"
	DefaultCacheSizeCompat        = "1GB"
	DefaultMetricsPort      int32 = 9090
	DefaultMetricsPath            = "/metrics"
	DefaultKrb5ConfKey            = "krb5.conf"
	DefaultAPIPort          int32 = 8080
	DefaultIdentityType           = "memory"
	DefaultAccessTokenTTL         = "15m"
	DefaultRefreshTokenTTL        = "168h"
	DefaultAdminUsername          = "admin"
	DefaultLogLevel               = "INFO"
	DefaultLogFormat              = "json"
	DefaultNFSPort          int32 = 12049
	DefaultSMBPort          int32 = 12445
	DefaultS3Region               = "eu-west-1"
	DefaultPerconaReplicas  int32 = 1
	DefaultPerconaStorage         = "10Gi"
	DefaultPerconaDatabase        = "dittofs"
	DefaultBackupFull             = "0 2 * * *"
	DefaultBackupIncr             = "0 * * * *"
	DefaultRetentionDays    int32 = 7
	PerconaSSLVerifyFull          = "verify-full"
	DatabaseSQLite                = "sqlite"
	DatabasePostgres              = "postgres"
)

// Default fills every unset field with the value the CRD schema would default it to. It never
// overwrites a value the user set.
func (d *DittoServer) Default() {
	s := &d.Spec
	orZero(&s.ImagePullPolicy, "IfNotPresent")
	orPtr(&s.Replicas, DefaultReplicas)
	orZero(&s.Storage.CacheSize, DefaultCacheSize)
	orZero(&s.Storage.ControlPlaneSize, DefaultControlPlaneSize)

	db := orNew(&s.Database)
	orZero(&db.Type, DefaultDatabaseType)
	orZero(&orNew(&db.SQLite).Path, DefaultSQLitePath)

	if s.Cache != nil {
		orZero(&s.Cache.Path, DefaultCachePath)
		orZero(&s.Cache.Size, DefaultCacheSizeCompat)
	}
	metrics := orNew(&s.Metrics)
	orPtr(&metrics.Enabled, true)
	orZero(&metrics.Port, DefaultMetricsPort)
	orZero(&metrics.Path, DefaultMetricsPath)
	logging := orNew(&s.Logging)
	orZero(&logging.Level, DefaultLogLevel)
	orZero(&logging.Format, DefaultLogFormat)
	cp := orNew(&s.ControlPlane)
	orZero(&cp.Port, DefaultAPIPort)
	orZero(&orNew(&cp.Service).Type, "ClusterIP")
	orZero(&orNew(&cp.TLS).Mode, APITLSOperator)

	id := orNew(&s.Identity)
	orZero(&id.Type, DefaultIdentityType)
	jwt := orNew(&id.JWT)
	orZero(&jwt.AccessTokenDuration, DefaultAccessTokenTTL)
	orZero(&jwt.RefreshTokenDuration, DefaultRefreshTokenTTL)
	orZero(&orNew(&id.Admin).Username, DefaultAdminUsername)
	if k := id.Kerberos; k != nil {
		orPtr(&k.Enabled, true)
		orZero(&k.Krb5ConfKey, DefaultKrb5ConfKey)
	}

	orZero(&orNew(&s.Service).Type, "ClusterIP")
	orPtr(&orNew(&s.NetworkPolicy).Enabled, true)
	orPtr(&s.NFSPort, DefaultNFSPort)
	if s.SMB != nil {
		orPtr(&s.SMB.Port, DefaultSMBPort)
	}
	for i := range s.SnapshotPolicies {
		orPtr(&s.SnapshotPolicies[i].Enabled, true)
	}
	if s.S3 != nil {
		orZero(&s.S3.Region, DefaultS3Region)
		if r := s.S3.CredentialsSecretRef; r != nil {
			orZero(&r.AccessKeyIDKey, "accessKeyId")
			orZero(&r.SecretAccessKeyKey, "secretAccessKey")
			orZero(&r.EndpointKey, "endpoint")
		}
	}
	if p := s.Percona; p != nil {
		orPtr(&p.Replicas, DefaultPerconaReplicas)
		orZero(&p.StorageSize, DefaultPerconaStorage)
		orZero(&p.DatabaseName, DefaultPerconaDatabase)
		orZero(&p.SSLMode, PerconaSSLVerifyFull)
		if b := p.Backup; b != nil {
			orZero(&b.Region, DefaultS3Region)
			orZero(&b.FullSchedule, DefaultBackupFull)
			orZero(&b.IncrSchedule, DefaultBackupIncr)
			orPtr(&b.RetentionDays, DefaultRetentionDays)
		}
	}
}

// orZero sets *p to v when it holds the zero value.
func orZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// orPtr sets *p to a pointer to v when it is nil.
func orPtr[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

// orNew returns *p, allocating it first when it is nil.
func orNew[T any](p **T) *T {
	if *p == nil {
		*p = new(T)
	}
	return *p
}
