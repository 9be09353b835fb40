package specs

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

// IsHelmCondition reports whether a condition type belongs to the Helm reconciler.
func IsHelmCondition(t string) bool {
	for _, h := range HelmConditionTypes {
		if h == t {
			return true
		}
	}
	return false
}

// Condition reasons. docs/TROUBLESHOOTING.md, docs/PERCONA.md and docs/CONTROLPLANE.md explain
// what the user does about each.
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
	ReasonRolloutQueued    = "RolloutQueued"
	ReasonNotDeployed      = "ReleaseNotDeployed"
	ReasonAllReady         = "AllComponentsReady"
	ReasonDeleting         = "Deleting"
	ReasonPostgresSecret   = "PostgresSecretReady"
	// ReasonCleanupTimeout: a deleted server's cleanup ran past its timeout and cannot finish.
	ReasonCleanupTimeout = "CleanupTimeout"

	// DatabaseReady reasons of a server on Percona.
	ReasonPerconaCRDMissing     = "PerconaCRDMissing"
	ReasonPerconaNotReady       = "PerconaNotReady"
	ReasonPerconaSecretMissing  = "PerconaUserSecretMissing"
	ReasonPerconaApplyFailed    = "PerconaApplyFailed"
	ReasonPerconaOwnedElsewhere = "PerconaOwnedElsewhere"
	ReasonPerconaReady          = "PerconaReady"

	// ControlPlaneReady and StorageReady reasons.
	ReasonControlPlaneApplied         = "Applied"
	ReasonControlPlaneFailed          = "APICallFailed"
	ReasonAPIUnreachable              = "APIUnreachable"
	ReasonAPICertificateRejected      = "APICertificateRejected"
	ReasonAdminCredentialUnauthorized = "AdminCredentialUnauthorized"
	ReasonS3CredentialsMissing        = "S3CredentialsMissing"
	ReasonStoreRejected               = "StoreRejected"
	ReasonS3EndpointRefused           = "S3EndpointRefused"
	ReasonStoreUnhealthy              = "StoreUnhealthy"
	ReasonStoreHealthy                = "StoreHealthy"
)

// Event reasons.
const (
	EventCreated         = "Created"
	EventConfigChanged   = "ConfigChanged"
	EventRollingRestart  = "RollingRestart"
	EventReady           = "Ready"
	EventNotReady        = "NotReady"
	EventReconcileFailed = "ReconcileFailed"
	// EventAPICertificateRenewed: the operator renewed the REST API's certificate.
	EventAPICertificateRenewed = "APICertificateRenewed"
	EventDeleting              = "Deleting"
	EventVolumesExpanding      = "VolumesExpanding"
	EventDataDeleted           = "DataDeleted"
	EventDriftReverted         = "DriftReverted"

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
	EventAdminPasswordChanged        = "AdminPasswordChanged"
	EventAdapterUpdated              = "AdapterUpdated"
	EventStoreCreated                = "StoreCreated"
	EventStoreUpdated                = "StoreUpdated"
	EventShareCreated                = "ShareCreated"
	EventShareUpdated                = "ShareUpdated"
	EventShareDeleted                = "ShareDeleted"
	EventSnapshotPolicyApplied       = "SnapshotPolicyApplied"
	EventLDAPApplied                 = "LDAPApplied"
	EventLDAPDisabled                = "LDAPDisabled"
	EventKerberosApplied             = "KerberosApplied"
	EventSnapshotPolicyDeleted       = "SnapshotPolicyDeleted"
	EventStorageNotReady             = "StorageNotReady"
	EventStorageReady                = "StorageReady"
	EventControlPlaneFailed          = "ControlPlaneFailed"
	EventControlPlaneUnreachable     = "ControlPlaneUnreachable"
)
