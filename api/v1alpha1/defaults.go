package v1alpha1

import "k8s.io/utils/ptr"

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
	DefaultAPIPort          int32 = 8080
	DefaultIdentityType           = "memory"
	DefaultAccessTokenTTL         = "15m"
	DefaultRefreshTokenTTL        = "168h"
	DefaultAdminUsername          = "admin"
	DefaultNFSPort          int32 = 12049
	DefaultSMBPort          int32 = 12445
	DefaultS3Region               = "eu-west-1"
	DefaultPerconaReplicas  int32 = 1
	DefaultPerconaStorage         = "10Gi"
	DefaultPerconaDatabase        = "dittofs"
	DefaultBackupFull             = "0 2 * * *"
	DefaultBackupIncr             = "0 * * * *"
	DefaultRetentionDays    int32 = 7
	DatabaseSQLite                = "sqlite"
	DatabasePostgres              = "postgres"
)

// Default fills every unset field with the value the CRD schema would default it to. It never
// overwrites a value the user set.
func (d *DittoServer) Default() {
	s := &d.Spec
	if s.ImagePullPolicy == "" {
		s.ImagePullPolicy = "IfNotPresent"
	}
	if s.Replicas == nil {
		s.Replicas = ptr.To(DefaultReplicas)
	}
	setStr(&s.Storage.CacheSize, DefaultCacheSize)
	setStr(&s.Storage.ControlPlaneSize, DefaultControlPlaneSize)

	if s.Database == nil {
		s.Database = &DatabaseSpec{}
	}
	setStr(&s.Database.Type, DefaultDatabaseType)
	if s.Database.SQLite == nil {
		s.Database.SQLite = &SQLiteSpec{}
	}
	setStr(&s.Database.SQLite.Path, DefaultSQLitePath)

	if s.Cache != nil {
		setStr(&s.Cache.Path, DefaultCachePath)
		setStr(&s.Cache.Size, DefaultCacheSizeCompat)
	}
	if s.Metrics == nil {
		s.Metrics = &MetricsSpec{}
	}
	setInt(&s.Metrics.Port, DefaultMetricsPort)
	if s.ControlPlane == nil {
		s.ControlPlane = &ControlPlaneSpec{}
	}
	setInt(&s.ControlPlane.Port, DefaultAPIPort)

	if s.Identity == nil {
		s.Identity = &IdentitySpec{}
	}
	setStr(&s.Identity.Type, DefaultIdentityType)
	if s.Identity.JWT == nil {
		s.Identity.JWT = &JWTSpec{}
	}
	setStr(&s.Identity.JWT.AccessTokenDuration, DefaultAccessTokenTTL)
	setStr(&s.Identity.JWT.RefreshTokenDuration, DefaultRefreshTokenTTL)
	if s.Identity.Admin == nil {
		s.Identity.Admin = &AdminSpec{}
	}
	setStr(&s.Identity.Admin.Username, DefaultAdminUsername)

	if s.Service == nil {
		s.Service = &ServiceSpec{}
	}
	if s.Service.Type == "" {
		s.Service.Type = "ClusterIP"
	}
	if s.NFSPort == nil {
		s.NFSPort = ptr.To(DefaultNFSPort)
	}
	if s.SMB != nil && s.SMB.Port == nil {
		s.SMB.Port = ptr.To(DefaultSMBPort)
	}
	if s.S3 != nil {
		setStr(&s.S3.Region, DefaultS3Region)
		if r := s.S3.CredentialsSecretRef; r != nil {
			setStr(&r.AccessKeyIDKey, "accessKeyId")
			setStr(&r.SecretAccessKeyKey, "secretAccessKey")
			setStr(&r.EndpointKey, "endpoint")
		}
	}
	if p := s.Percona; p != nil {
		if p.Replicas == nil {
			p.Replicas = ptr.To(DefaultPerconaReplicas)
		}
		setStr(&p.StorageSize, DefaultPerconaStorage)
		setStr(&p.DatabaseName, DefaultPerconaDatabase)
		if b := p.Backup; b != nil {
			setStr(&b.Region, DefaultS3Region)
			setStr(&b.FullSchedule, DefaultBackupFull)
			setStr(&b.IncrSchedule, DefaultBackupIncr)
			if b.RetentionDays == nil {
				b.RetentionDays = ptr.To(DefaultRetentionDays)
			}
		}
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int32, v int32) {
	if *p == 0 {
		*p = v
	}
}
