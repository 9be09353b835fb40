// Package hybrid is the Go side of the hybrid operator: value translation for the Helm
// reconciler, the stateful reconciler (Secrets, StatefulSet, status) and the status client
// wrapper that lets both reconcilers share DittoServer status.
package hybrid

// Names, labels and annotations. Every string the operator stamps on an object lives here.
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
	LabelVersion   = "app.kubernetes.io/version"

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
	// AnnotationRemoteStoreUpdated (on the operator Secret and the pod template) is the time the
	// operator last updated the S3 remote store through the API. DittoFS v0.29.0 keeps using the
	// remote store it built for a running share, so a changed store (credential rotation) takes
	// effect only after the pod restarts: changing this annotation restarts it.
	AnnotationRemoteStoreUpdated = "dittofs.dittofs.com/remote-store-updated"

	// Container layout (DittoFS v0.29.0 image contract, ARCHITECTURE §4.1).
	ContainerName   = "dittofs"
	ConfigMountPath = "/config"
	ConfigFileName  = "config.yaml"
	NFSAdapterPort  = 12049
	SMBAdapterPort  = 1445
	DittoFSUID      = 65532

	// Volumes (claim templates) and where they are mounted.
	VolumeControlPlane = "controlplane"
	VolumeMetadata     = "metadata"
	VolumeCache        = "cache"
	VolumeContent      = "content"
	VolumeConfig       = "config"

	// Generated Secret keys.
	JWTSecretKey       = "secret"
	AdminUsernameKey   = "username"
	AdminPasswordKey   = "password"
	DefaultAdminUser   = "admin"
	JWTSecretMinLength = 32

	// Shutdown budget: dfs exits by itself after 3*shutdown_timeout+5s; the preStop sleep
	// comes first. The grace period covers both with a margin.
	ShutdownTimeoutSeconds = 30
	PreStopSleepSeconds    = 5
)

// Condition types owned by the Go controller.
const (
	ConditionReady         = "Ready"
	ConditionConfigReady   = "ConfigReady"
	ConditionDatabaseReady = "DatabaseReady"
	ConditionAvailable     = "Available"
	ConditionProgressing   = "Progressing"
	// ConditionControlPlaneReady: the spec is applied through the DittoFS REST API
	// (operator account, adapters, stores, share). Set once the pod is Ready.
	ConditionControlPlaneReady = "ControlPlaneReady"
	// ConditionStorageReady: the S3 remote block store's status as the server reports it
	// (only with spec.s3).
	ConditionStorageReady = "StorageReady"
)

// Condition types owned by the Helm reconciler (helm-operator-plugins).
const (
	ConditionInitialized    = "Initialized"
	ConditionDeployed       = "Deployed"
	ConditionReleaseFailed  = "ReleaseFailed"
	ConditionIrreconcilable = "Irreconcilable"
	ConditionPaused         = "Paused"
)

// HelmConditionTypes are the condition types the Helm reconciler may write.
var HelmConditionTypes = []string{
	ConditionInitialized, ConditionDeployed, ConditionReleaseFailed, ConditionIrreconcilable, ConditionPaused,
}

// Condition reasons and event reasons.
const (
	ReasonAsExpected     = "AsExpected"
	ReasonReconciling    = "Reconciling"
	ReasonConfigRendered = "ConfigRendered"
	ReasonConfigPending  = "ConfigPending"
	ReasonRenderFailed   = "RenderFailed"
	ReasonInvalidSpec    = "InvalidSpec"
	// ReasonVolumeExpansionBlocked: a larger spec.storage size the StorageClass cannot give.
	ReasonVolumeExpansionBlocked = "VolumeExpansionBlocked"
	// ReasonExpandingVolumes: PVCs resized, the StatefulSet being re-created for them.
	ReasonExpandingVolumes = "ExpandingVolumes"
	ReasonSecretMissing    = "SecretMissing"
	ReasonSecretInvalid    = "SecretInvalid"
	ReasonPodsReady        = "PodsReady"
	ReasonPodsNotReady     = "PodsNotReady"
	ReasonStopped          = "Stopped"
	ReasonRollingOut       = "RollingOut"
	ReasonRolledOut        = "RolledOut"
	ReasonNotDeployed      = "ReleaseNotDeployed"
	ReasonAllReady         = "AllComponentsReady"
	ReasonDeleting         = "Deleting"
	ReasonPostgresSecret   = "PostgresSecretReady"
	ReasonNotNeeded        = "NotNeeded"

	// DatabaseReady reasons of a server on Percona (docs/PERCONA.md explains each).
	ReasonPerconaCRDMissing     = "PerconaCRDMissing"
	ReasonPerconaNotReady       = "PerconaNotReady"
	ReasonPerconaSecretMissing  = "PerconaUserSecretMissing"
	ReasonPerconaApplyFailed    = "PerconaApplyFailed"
	ReasonPerconaOwnedElsewhere = "PerconaOwnedElsewhere"
	ReasonPerconaReady          = "PerconaReady"
	// Control-plane reasons (docs/CONTROLPLANE.md).
	ReasonControlPlaneApplied         = "Applied"
	ReasonControlPlaneFailed          = "APICallFailed"
	ReasonAPIUnreachable              = "APIUnreachable"
	ReasonAdminCredentialUnauthorized = "AdminCredentialUnauthorized"
	ReasonS3CredentialsMissing        = "S3CredentialsMissing"
	ReasonStoreRejected               = "StoreRejected"
	ReasonStoreUnhealthy              = "StoreUnhealthy"
	ReasonStoreHealthy                = "StoreHealthy"

	// ReasonCleanupTimeout: a deleted server's cleanup ran past its timeout and cannot finish.
	ReasonCleanupTimeout = "CleanupTimeout"

	EventCreated         = "Created"
	EventConfigChanged   = "ConfigChanged"
	EventRollingRestart  = "RollingRestart"
	EventReady           = "Ready"
	EventNotReady        = "NotReady"
	EventReconcileFailed = "ReconcileFailed"
	EventSecretCreated   = "SecretCreated"
	EventDeleting        = "Deleting"

	EventPerconaCreated        = "PerconaCreated"
	EventPerconaNotReady       = "PerconaNotReady"
	EventPerconaCRDMissing     = "PerconaCRDMissing"
	EventDatabaseReady         = "DatabaseReady"
	EventPerconaOrphaned       = "PerconaOrphaned"
	EventPerconaDeleted        = "PerconaDeleted"
	EventCleanupTimeout        = "CleanupTimeout"
	EventPostgresSecretIgnored = "PostgresSecretIgnored"

	EventAdminCredentialUnauthorized = "AdminCredentialUnauthorized"
	EventOperatorAccountProvisioned  = "OperatorAccountProvisioned"
	EventAdapterUpdated              = "AdapterUpdated"
	EventStoreCreated                = "StoreCreated"
	EventStoreUpdated                = "StoreUpdated"
	EventShareCreated                = "ShareCreated"
	EventShareUpdated                = "ShareUpdated"
	EventShareDeleted                = "ShareDeleted"
	EventStorageNotReady             = "StorageNotReady"
	EventStorageReady                = "StorageReady"
	EventControlPlaneFailed          = "ControlPlaneFailed"
	EventControlPlaneUnreachable     = "ControlPlaneUnreachable"
	EventVolumesExpanding            = "VolumesExpanding"
)
