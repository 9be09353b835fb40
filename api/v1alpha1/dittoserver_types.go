package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DittoServerSpec is the desired state of one DittoFS file server.
//
// Stores, shares, users and adapter settings of DittoFS v0.29.0 live in its control-plane
// database: the operator applies spec.smb, spec.s3 and spec.shares through the server's REST
// API once the pod is Ready (ControlPlaneReady and StorageReady conditions); the rest of the
// spec is infrastructure (volumes, ports, database, identity bootstrap).
//
// Ports: the NFS and SMB adapters listen on the fixed container ports 12049 and 1445; nfsPort and
// smb.port are the ports the "-file" Service exposes. The API and metrics ports are the container
// ports themselves, so they must not collide with each other nor with 12049/1445.
//
// +kubebuilder:validation:XValidation:rule="!has(self.controlPlane) || !has(self.controlPlane.port) || !(self.controlPlane.port in [12049, 1445])",message="spec.controlPlane.port must not be 12049 or 1445: the NFS and SMB adapters listen on those ports inside the pod; pick another port, e.g. 8080"
// +kubebuilder:validation:XValidation:rule="!has(self.metrics) || !self.metrics.enabled || !has(self.metrics.port) || !(self.metrics.port in [12049, 1445])",message="spec.metrics.port must not be 12049 or 1445: the NFS and SMB adapters listen on those ports inside the pod; pick another port, e.g. 9090"
// +kubebuilder:validation:XValidation:rule="!has(self.metrics) || !self.metrics.enabled || !has(self.metrics.port) || !has(self.controlPlane) || !has(self.controlPlane.port) || self.metrics.port != self.controlPlane.port",message="spec.metrics.port must differ from spec.controlPlane.port: both are served by the same pod; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.smb) || !self.smb.enabled || !has(self.smb.port) || !has(self.nfsPort) || self.smb.port != self.nfsPort",message="spec.smb.port must differ from spec.nfsPort: both are ports of the same -file Service; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.nfsPort) || !has(self.controlPlane) || !has(self.controlPlane.port) || self.nfsPort != self.controlPlane.port",message="spec.nfsPort must differ from spec.controlPlane.port; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.nfsPort) || !has(self.metrics) || !self.metrics.enabled || !has(self.metrics.port) || self.nfsPort != self.metrics.port",message="spec.nfsPort must differ from spec.metrics.port; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.smb) || !self.smb.enabled || !has(self.smb.port) || !has(self.controlPlane) || !has(self.controlPlane.port) || self.smb.port != self.controlPlane.port",message="spec.smb.port must differ from spec.controlPlane.port; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.smb) || !self.smb.enabled || !has(self.smb.port) || !has(self.metrics) || !self.metrics.enabled || !has(self.metrics.port) || self.smb.port != self.metrics.port",message="spec.smb.port must differ from spec.metrics.port; pick distinct ports"
// +kubebuilder:validation:XValidation:rule="!has(self.database) || !has(self.database.type) || self.database.type != 'postgres' || has(self.database.postgresSecretRef) || (has(self.percona) && self.percona.enabled)",message="spec.database.type is postgres but no PostgreSQL is named: set spec.database.postgresSecretRef (a Secret key with the URI) or spec.percona.enabled, or use type sqlite"
type DittoServerSpec struct {
	// Image is the DittoFS container image. When empty, the operator uses the image from its
	// RELATED_IMAGE_DITTOFS environment variable, or marmos91c/dittofs:v0.29.0.
	// +optional
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of the DittoFS container.
	// +kubebuilder:default=IfNotPresent
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets for the DittoFS pod.
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Replicas is 1 (running) or 0 (stopped; volumes are kept). DittoFS is a single-node server.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Storage sizes the server's persistent volumes.
	Storage StorageSpec `json:"storage"`

	// Database selects the control-plane database (SQLite on a volume, or PostgreSQL).
	// +kubebuilder:default={}
	// +optional
	Database *DatabaseSpec `json:"database,omitempty"`

	// Cache is accepted for compatibility with earlier versions of this API. DittoFS v0.29.0 has
	// no such setting: the local block-store space is sized by storage.cacheSize. Setting it has no
	// effect and is reported as a warning.
	// +optional
	Cache *CacheSpec `json:"cache,omitempty"`

	// Metrics exposes Prometheus metrics on a dedicated port and Service.
	// +kubebuilder:default={}
	// +optional
	Metrics *MetricsSpec `json:"metrics,omitempty"`

	// Logging configures the server's logs (the container's stdout).
	// +kubebuilder:default={}
	// +optional
	Logging *LoggingSpec `json:"logging,omitempty"`

	// ControlPlane configures the DittoFS REST API (also used by the probes).
	// +kubebuilder:default={}
	// +optional
	ControlPlane *ControlPlaneSpec `json:"controlPlane,omitempty"`

	// Identity configures the JWT signing secret and the initial admin password.
	// +kubebuilder:default={}
	// +optional
	Identity *IdentitySpec `json:"identity,omitempty"`

	// AdapterDiscovery is accepted for compatibility with earlier versions of this API and has no
	// effect.
	// +optional
	AdapterDiscovery *AdapterDiscoverySpec `json:"adapterDiscovery,omitempty"`

	// Service configures the "-file" Service (NFS, SMB): how clients reach the file server. The
	// REST admin API has its own exposure, spec.controlPlane.service.
	// +kubebuilder:default={}
	// +optional
	Service *ServiceSpec `json:"service,omitempty"`

	// NetworkPolicy restricts who may connect to the server's pod. On by default.
	// +kubebuilder:default={}
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// NFSPort is the port of the "-file" Service for NFS; it targets the server's NFS adapter
	// (container port 12049).
	// +kubebuilder:default=12049
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	NFSPort *int32 `json:"nfsPort,omitempty"`

	// SMB exposes the server's SMB adapter (container port 1445) on the "-file" Service.
	// +optional
	SMB *SMBSpec `json:"smb,omitempty"`

	// S3 configures the S3 remote block store "s3", which the operator creates in the server's
	// control plane through its REST API (credentials included) and keeps in sync with the
	// Secret. Its health is the StorageReady condition.
	// +optional
	S3 *S3Spec `json:"s3,omitempty"`

	// Shares the operator creates and updates through the DittoFS REST API. Each uses the
	// badger metadata store "default" (on the metadata volume), the fs local block store
	// "default" (on the content or cache volume, see storage) and, with spec.s3, the remote block
	// store "s3". Unset: one share "/export". An empty list creates none. Shares removed from the
	// list are kept unless pruneShares is true.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Shares []ShareSpec `json:"shares,omitempty"`

	// PruneShares deletes the shares the operator created that are no longer in spec.shares.
	// Shares created by other means (dfsctl) are never deleted.
	// +kubebuilder:default=false
	// +optional
	PruneShares bool `json:"pruneShares,omitempty"`

	// SnapshotPolicies schedule snapshots of shares, one policy per share, applied through the
	// DittoFS REST API and put back when changed on the server. A policy removed from the list
	// is deleted if the operator created it; a policy made with dfsctl is never deleted.
	// +listType=map
	// +listMapKey=share
	// +kubebuilder:validation:MaxItems=32
	// +optional
	SnapshotPolicies []SnapshotPolicySpec `json:"snapshotPolicies,omitempty"`

	// Percona provisions a PostgreSQL cluster through the Percona PostgreSQL operator and runs
	// the DittoFS control plane on it.
	// +optional
	Percona *PerconaSpec `json:"percona,omitempty"`

	// Resources of the DittoFS container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// SecurityContext of the DittoFS container. Restricted defaults are merged in: your values
	// win, but capabilities always drop ALL.
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`

	// PodSecurityContext of the DittoFS pod. Defaults: runAsNonRoot, uid/gid/fsGroup 65532,
	// RuntimeDefault seccomp profile.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`

	// NodeSelector places the DittoFS pod on nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the DittoFS pod.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of the DittoFS pod (node affinity, pod affinity and anti-affinity).
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints of the DittoFS pod.
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// PriorityClassName of the DittoFS pod: a file server often deserves a high priority, so
	// that it is not the first pod preempted.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// PodLabels are added to the DittoFS pod. The labels the operator sets
	// (app.kubernetes.io/name, instance, part-of, component, version) cannot be overridden.
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`

	// PodAnnotations are added to the DittoFS pod. Annotations under dittofs.dittofs.com/ are
	// the operator's and cannot be set here. A change restarts the pod.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`

	// Env are extra environment variables of the DittoFS container, literal or from Secret and
	// ConfigMap keys (valueFrom). Names starting with DITTOFS_ are refused: DittoFS reads them
	// as its configuration, which the spec and spec.chartValues.config own.
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// ChartValues are merged over the values the operator derives from this spec (last wins) and
	// checked against the chart's values.schema.json: extra labels and annotations for the
	// rendered objects, or extra DittoFS config keys under "config".
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	ChartValues *apiextensionsv1.JSON `json:"chartValues,omitempty"`
}

// StorageSpec sizes the server's PersistentVolumeClaims. Sizes are whole numbers of Mi, Gi or Ti.
//
// +kubebuilder:validation:XValidation:rule="has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",message="spec.storage.storageClassName cannot change on an existing server (it cannot be added, changed or removed): the existing volumes keep their class; create a new DittoServer to move to another class"
// +kubebuilder:validation:XValidation:rule="quantity(self.metadataSize).compareTo(quantity(oldSelf.metadataSize)) >= 0",message="spec.storage.metadataSize cannot decrease: PersistentVolumeClaims cannot shrink; keep the current size or larger"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cacheSize) || !has(self.cacheSize) || quantity(self.cacheSize).compareTo(quantity(oldSelf.cacheSize)) >= 0",message="spec.storage.cacheSize cannot decrease: PersistentVolumeClaims cannot shrink; keep the current size or larger"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.controlPlaneSize) || !has(self.controlPlaneSize) || quantity(self.controlPlaneSize).compareTo(quantity(oldSelf.controlPlaneSize)) >= 0",message="spec.storage.controlPlaneSize cannot decrease: PersistentVolumeClaims cannot shrink; keep the current size or larger"
// +kubebuilder:validation:XValidation:rule="has(self.contentSize) == has(oldSelf.contentSize)",message="spec.storage.contentSize cannot be added or removed on an existing server: the volume set of a StatefulSet is fixed; create a new DittoServer"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.contentSize) || !has(self.contentSize) || quantity(self.contentSize).compareTo(quantity(oldSelf.contentSize)) >= 0",message="spec.storage.contentSize cannot decrease: PersistentVolumeClaims cannot shrink; keep the current size or larger"
type StorageSpec struct {
	// MetadataSize of the "metadata" volume (/data/metadata), for the metadata stores.
	// +kubebuilder:validation:Pattern=`^[0-9]+(Mi|Gi|Ti)$`
	// +kubebuilder:example="10Gi"
	MetadataSize string `json:"metadataSize"`

	// ContentSize of the optional "content" volume (/data/content). On a server without s3 it
	// holds the files (the local block store) and no cache volume is made. With s3 the files live
	// in the bucket and no content volume is made (one made earlier is kept, and reported).
	// +kubebuilder:validation:Pattern=`^[0-9]+(Mi|Gi|Ti)$`
	// +optional
	ContentSize string `json:"contentSize,omitempty"`

	// CacheSize of the "cache" volume (/data/cache): the local tier in front of s3 (a
	// write-through cache), or the files themselves on a server with neither s3 nor
	// contentSize. The local block store may use 90% of the volume that holds it.
	// +kubebuilder:default="5Gi"
	// +kubebuilder:validation:Pattern=`^[0-9]+(Mi|Gi|Ti)$`
	// +optional
	CacheSize string `json:"cacheSize,omitempty"`

	// ControlPlaneSize of the "controlplane" volume (/data/controlplane), which holds the SQLite
	// control-plane database (stores, shares, users, adapters).
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:Pattern=`^[0-9]+(Mi|Gi|Ti)$`
	// +optional
	ControlPlaneSize string `json:"controlPlaneSize,omitempty"`

	// StorageClassName for every volume; the cluster default when empty. Fixed at creation.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// DeleteWithServer deletes the PersistentVolumeClaims and the generated credentials (the
	// admin, JWT and operator-account Secrets) with the DittoServer. Otherwise they are kept,
	// and a DittoServer created again with the same name in the namespace adopts them: its
	// data and the credentials that open it.
	// +kubebuilder:default=false
	// +optional
	DeleteWithServer bool `json:"deleteWithServer,omitempty"`
}

// DatabaseSpec selects the control-plane database.
type DatabaseSpec struct {
	// Type is sqlite or postgres. A postgresSecretRef wins over sqlite.
	// +kubebuilder:default=sqlite
	// +kubebuilder:validation:Enum=sqlite;postgres
	// +optional
	Type string `json:"type,omitempty"`

	// SQLite configures the SQLite database file.
	// +kubebuilder:default={}
	// +optional
	SQLite *SQLiteSpec `json:"sqlite,omitempty"`

	// PostgresSecretRef names a Secret key holding a PostgreSQL URI
	// (postgres://user:password@host:port/database?sslmode=...). The operator turns it into the
	// discrete DITTOFS_DATABASE_POSTGRES_* variables through a Secret it owns. Without sslmode
	// the connection requires TLS (sslmode=require); a server without TLS needs
	// ?sslmode=disable.
	// +optional
	PostgresSecretRef *corev1.SecretKeySelector `json:"postgresSecretRef,omitempty"`
}

// SQLiteSpec configures the SQLite control-plane database.
type SQLiteSpec struct {
	// Path of the database file. It must live on the controlplane volume, or every restart
	// would erase stores, shares and users.
	// +kubebuilder:default="/data/controlplane/controlplane.db"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/data/controlplane/') && !self.contains('..') && size(self) > 19",message="spec.database.sqlite.path must be a file under /data/controlplane/ (the persistent controlplane volume), e.g. /data/controlplane/controlplane.db"
	// +optional
	Path string `json:"path,omitempty"`
}

// CacheSpec is kept for compatibility; DittoFS v0.29.0 has no cache settings in its config file.
type CacheSpec struct {
	// Path has no effect in DittoFS v0.29.0.
	// +kubebuilder:default="/data/cache"
	// +optional
	Path string `json:"path,omitempty"`

	// Size has no effect in DittoFS v0.29.0; use storage.cacheSize.
	// +kubebuilder:default="1GB"
	// +optional
	Size string `json:"size,omitempty"`
}

// MetricsSpec configures the Prometheus endpoint.
type MetricsSpec struct {
	// Enabled turns the metrics endpoint and the "-metrics" Service on (default true: the
	// endpoint costs the server about 1 MiB and no measurable CPU between scrapes). Its
	// NetworkPolicy admits only the operator's namespace and spec.networkPolicy.metricsFrom.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Port of the metrics endpoint (container and Service).
	// +kubebuilder:default=9090
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// Path the metrics are served on (and scraped from).
	// +kubebuilder:default="/metrics"
	// +kubebuilder:validation:Pattern=`^/[^\s?#]*$`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Path string `json:"path,omitempty"`

	// BearerTokenSecretRef names a Secret key holding a token that scrapers must send
	// (Authorization: Bearer <token>); unset, the endpoint needs none and the NetworkPolicy
	// is its only guard. The token is mounted as a file; DittoFS reads it at boot, so a new
	// token restarts the pod. The ServiceMonitor, when enabled, sends it.
	// +optional
	BearerTokenSecretRef *corev1.SecretKeySelector `json:"bearerTokenSecretRef,omitempty"`

	// ServiceMonitor asks the operator for a Prometheus-operator ServiceMonitor "<name>" that
	// scrapes the "-metrics" Service. It is made only where the ServiceMonitor CRD
	// (monitoring.coreos.com/v1) is installed; elsewhere Ready's message says so. The server's
	// NetworkPolicy must admit Prometheus: list its namespace in spec.networkPolicy.metricsFrom.
	// +optional
	ServiceMonitor *ServiceMonitorSpec `json:"serviceMonitor,omitempty"`
}

// ServiceMonitorSpec configures the server's ServiceMonitor.
type ServiceMonitorSpec struct {
	// Enabled creates the ServiceMonitor (with spec.metrics.enabled).
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Interval between scrapes (e.g. 30s); empty: Prometheus's own.
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	// +optional
	Interval string `json:"interval,omitempty"`

	// Labels of the ServiceMonitor, e.g. the one your Prometheus selects ServiceMonitors by
	// (release: prometheus). The operator's own labels cannot be overridden.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// ControlPlaneSpec configures the REST API.
type ControlPlaneSpec struct {
	// Port of the REST API (container and "-api" Service); the probes use it too.
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// Service configures the "-api" Service of the REST admin API. It is ClusterIP (reachable
	// inside the cluster only) unless set here on purpose: the API takes the admin password and
	// manages users, shares and stores.
	// +kubebuilder:default={}
	// +optional
	Service *APIServiceSpec `json:"service,omitempty"`

	// TLS of the REST API, which carries the admin password and the S3 keys. By default the
	// operator serves it over HTTPS with a certificate it issues from a CA of its own per server.
	// +kubebuilder:default={}
	// +optional
	TLS *APITLSSpec `json:"tls,omitempty"`
}

// APITLSMode is where the REST API's certificate comes from.
// +kubebuilder:validation:Enum=Operator;Secret;Disabled
type APITLSMode string

// Values of spec.controlPlane.tls.mode.
const (
	APITLSOperator APITLSMode = "Operator"
	APITLSSecret   APITLSMode = "Secret"
	APITLSDisabled APITLSMode = "Disabled"
)

// APITLSSpec configures HTTPS for the REST API.
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'Secret' || (has(self.secretName) && size(self.secretName) > 0)",message="spec.controlPlane.tls.secretName is required with mode Secret: name a Secret with tls.crt and tls.key (and ca.crt), e.g. one cert-manager issues"
// +kubebuilder:validation:XValidation:rule="!has(self.secretName) || size(self.secretName) == 0 || (has(self.mode) && self.mode == 'Secret')",message="spec.controlPlane.tls.secretName is used only with mode Secret; set mode: Secret or remove secretName"
type APITLSSpec struct {
	// Mode: Operator (default) issues the certificate from a CA the operator makes for the
	// server, both kept in the Secret "<name>-api-tls" (ca.crt is what clients such as dfsctl
	// trust) and renewed 30 days before it expires; Secret serves the certificate of
	// secretName; Disabled serves plain HTTP, on purpose. DittoFS reloads a renewed
	// certificate without a restart; changing the mode restarts the pod.
	// +kubebuilder:default=Operator
	// +optional
	Mode APITLSMode `json:"mode,omitempty"`

	// SecretName (mode Secret) is a Secret in the server's namespace with tls.crt and tls.key,
	// and ca.crt, the CA the operator verifies the server with (without it, the system's
	// roots). cert-manager's Certificate Secrets have these keys. The certificate must name
	// <name>-api.<namespace>.svc, the name the operator verifies.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`
}

// APIServiceSpec exposes the REST admin API.
type APIServiceSpec struct {
	// Type of the "-api" Service. Anything but ClusterIP makes the admin API reachable from
	// outside the cluster.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// Annotations of the "-api" Service. Keys removed here are removed from the Service.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// IdentitySpec configures authentication: the REST API's tokens and admin account, and the
// directory and Kerberos services the file protocols use.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.kerberos) || has(self.kerberos)",message="spec.identity.kerberos cannot be removed: DittoFS keeps its Kerberos settings in its database; set spec.identity.kerberos.enabled: false to turn Kerberos off"
type IdentitySpec struct {
	// Type is informational: DittoFS v0.29.0 keeps users in its control-plane database.
	// +kubebuilder:default=memory
	// +kubebuilder:validation:Enum=memory
	// +optional
	Type string `json:"type,omitempty"`

	// JWT configures token signing.
	// +kubebuilder:default={}
	// +optional
	JWT *JWTSpec `json:"jwt,omitempty"`

	// Admin configures the initial admin account.
	// +kubebuilder:default={}
	// +optional
	Admin *AdminSpec `json:"admin,omitempty"`

	// LDAP connects DittoFS to an LDAP or Active Directory directory that resolves users and
	// groups. The operator applies it through the server's REST API (DittoFS keeps it in its
	// control-plane database and reloads it without a restart) and restores it when changed by
	// other means; removing this field disables the directory the operator configured.
	// +optional
	LDAP *LDAPSpec `json:"ldap,omitempty"`

	// Kerberos lets NFS clients authenticate with Kerberos (RPCSEC_GSS: krb5, krb5i, krb5p) and
	// makes the SMB server domain-aware. The keytab is mounted from a Secret; a new keytab
	// restarts the pod. DittoFS keeps these settings in its database after the first boot, so
	// the operator applies a change through the REST API and restarts the pod once (the
	// adapters read them at startup). It cannot be removed once set (set enabled: false).
	// +optional
	Kerberos *KerberosSpec `json:"kerberos,omitempty"`
}

// KerberosSpec is DittoFS v0.29.0's Kerberos service configuration. Machine accounts (NTLM
// pass-through to a domain controller) and static principal-to-UID mappings are not part of it:
// manage them with dfsctl.
type KerberosSpec struct {
	// Enabled turns Kerberos authentication on (default true). Set it to false, rather than
	// removing spec.identity.kerberos, to turn Kerberos off on a server that had it.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// ServicePrincipal is the service principal the keytab holds, service/host@REALM, e.g.
	// nfs/files.example.com@EXAMPLE.COM.
	// +kubebuilder:validation:Pattern=`^[^/@\s]+/[^/@\s]+@[^/@\s]+$`
	ServicePrincipal string `json:"servicePrincipal"`

	// KeytabSecretRef names the Secret key holding the keytab (binary). It is mounted into the
	// pod; changing it restarts the pod.
	KeytabSecretRef corev1.SecretKeySelector `json:"keytabSecretRef"`

	// Krb5ConfKey is the key of the keytab's Secret holding the krb5.conf (realms, KDCs),
	// mounted next to the keytab. Required: DittoFS v0.29.0 does not start its SMB adapter with
	// Kerberos on without one, and the image has no /etc/krb5.conf.
	// +kubebuilder:default="krb5.conf"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Krb5ConfKey string `json:"krb5ConfKey,omitempty"`

	// Realm is the Kerberos realm (e.g. EXAMPLE.COM). Default: the principal's @REALM.
	// +kubebuilder:validation:Pattern=`^[^/@\s]+$`
	// +optional
	Realm string `json:"realm,omitempty"`

	// NetBIOSDomain is the short domain name the SMB server advertises (e.g. EXAMPLE).
	// Default: none, the server stays in WORKGROUP.
	// +kubebuilder:validation:Pattern=`^[^./@\s]+$`
	// +optional
	NetBIOSDomain string `json:"netbiosDomain,omitempty"`

	// DNSDomain is the DNS domain the SMB server advertises. Default: the realm in lower case.
	// +kubebuilder:validation:Pattern=`^[^/@\s]+$`
	// +optional
	DNSDomain string `json:"dnsDomain,omitempty"`

	// MaxClockSkew is the clock difference tolerated between clients and the server (Go
	// duration; default 5m).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	MaxClockSkew string `json:"maxClockSkew,omitempty"`

	// ContextTTL is the lifetime of an RPCSEC_GSS context before clients authenticate again
	// (Go duration; default 8h).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	ContextTTL string `json:"contextTTL,omitempty"`

	// MaxContexts bounds the concurrent RPCSEC_GSS contexts (default 10000).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxContexts int32 `json:"maxContexts,omitempty"`
}

// LDAPSpec is DittoFS v0.29.0's LDAP/AD identity provider. The connection is encrypted unless
// allowPlaintext says otherwise.
// +kubebuilder:validation:XValidation:rule="!self.url.startsWith('ldap://') || (has(self.startTLS) && self.startTLS) || (has(self.allowPlaintext) && self.allowPlaintext)",message="spec.identity.ldap.url uses plaintext ldap://: set startTLS: true to upgrade the connection, use ldaps://, or set allowPlaintext: true to send the bind password unencrypted on purpose"
// +kubebuilder:validation:XValidation:rule="!has(self.insecureSkipVerify) || !self.insecureSkipVerify || !has(self.caSecretRef)",message="spec.identity.ldap.insecureSkipVerify and caSecretRef exclude each other: with a CA the certificate is verified; remove one"
type LDAPSpec struct {
	// URL of the directory: ldaps://host:636 (preferred) or ldap://host:389 with startTLS.
	// +kubebuilder:validation:Pattern=`^ldaps?://[^\s/]+/?$`
	// +kubebuilder:validation:MaxLength=512
	URL string `json:"url"`

	// StartTLS upgrades an ldap:// connection to TLS before binding (ignored for ldaps://).
	// +optional
	StartTLS bool `json:"startTLS,omitempty"`

	// AllowPlaintext permits an unencrypted ldap:// bind. Lab use only: the bind password
	// crosses the network in clear text.
	// +optional
	AllowPlaintext bool `json:"allowPlaintext,omitempty"`

	// BaseDN is the search base for users and groups, e.g. DC=example,DC=com.
	// +kubebuilder:validation:MinLength=1
	BaseDN string `json:"baseDN"`

	// BindDN is the service account DittoFS binds as before searching, e.g.
	// CN=svc-dittofs,CN=Users,DC=example,DC=com.
	// +kubebuilder:validation:MinLength=1
	BindDN string `json:"bindDN"`

	// BindPasswordSecretRef names the Secret key with the service account's password. The
	// operator sends it to DittoFS over the API (TLS by default) when it changes; it is never
	// written to the ConfigMap or the pod spec.
	BindPasswordSecretRef corev1.SecretKeySelector `json:"bindPasswordSecretRef"`

	// UserAttr is the attribute matched against a user's name. DittoFS's default:
	// sAMAccountName (Active Directory); uid for most other directories.
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9-]*$`
	// +optional
	UserAttr string `json:"userAttr,omitempty"`

	// Realm is the directory's realm (e.g. EXAMPLE.COM), matched against user@REALM names.
	// +optional
	Realm string `json:"realm,omitempty"`

	// Idmap derives UIDs and GIDs from the RFC 2307 attributes uidNumber/gidNumber (rfc2307,
	// DittoFS's default) or from the object's RID (rid, like Samba's idmap_rid).
	// +kubebuilder:validation:Enum=rfc2307;rid
	// +optional
	Idmap string `json:"idmap,omitempty"`

	// NestedGroups resolves group memberships transitively.
	// +optional
	NestedGroups bool `json:"nestedGroups,omitempty"`

	// Timeout bounds each directory operation (Go duration; DittoFS's default 10s).
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	Timeout string `json:"timeout,omitempty"`

	// MaxGroupResults caps the groups resolved for one user (DittoFS's default 200).
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxGroupResults int32 `json:"maxGroupResults,omitempty"`

	// CASecretRef names a Secret key with the PEM CA bundle that verifies the directory's
	// certificate (the system roots when empty). The key is mounted into the pod.
	// +optional
	CASecretRef *corev1.SecretKeySelector `json:"caSecretRef,omitempty"`

	// InsecureSkipVerify accepts any certificate from the directory. Lab use only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// MinTLSVersion is the lowest TLS version accepted: "1.2" (DittoFS's default) or "1.3".
	// +kubebuilder:validation:Enum="1.2";"1.3"
	// +optional
	MinTLSVersion string `json:"minTLSVersion,omitempty"`
}

// JWTSpec configures JWT signing.
type JWTSpec struct {
	// SecretRef names the Secret key with the signing secret (at least 32 characters). When
	// empty, the operator creates "<name>-jwt-secret" once and never rotates it.
	// +optional
	SecretRef *corev1.SecretKeySelector `json:"secretRef,omitempty"`

	// AccessTokenDuration is the lifetime of access tokens (Go duration).
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	AccessTokenDuration string `json:"accessTokenDuration,omitempty"`

	// RefreshTokenDuration is the lifetime of refresh tokens (Go duration).
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +optional
	RefreshTokenDuration string `json:"refreshTokenDuration,omitempty"`

	// Issuer has no effect: DittoFS v0.29.0 uses a fixed issuer. Setting it is reported as a
	// warning.
	// +optional
	Issuer string `json:"issuer,omitempty"`
}

// AdminSpec configures the initial admin account.
type AdminSpec struct {
	// Username must be "admin": DittoFS v0.29.0 always creates the admin user under that name.
	// +kubebuilder:default=admin
	// +kubebuilder:validation:XValidation:rule="self == 'admin'",message="spec.identity.admin.username must be \"admin\": DittoFS v0.29.0 always names its admin user admin; remove the field or set it to admin"
	// +optional
	Username string `json:"username,omitempty"`

	// PasswordSecretRef names the Secret key with the admin password in cleartext, used on first
	// boot only. When empty, the operator creates "<name>-admin-credentials" (keys username and
	// password) once and never rotates it.
	// +optional
	PasswordSecretRef *corev1.SecretKeySelector `json:"passwordSecretRef,omitempty"`
}

// AdapterDiscoverySpec is kept for compatibility and has no effect.
type AdapterDiscoverySpec struct {
	// PollingInterval has no effect.
	// +optional
	PollingInterval string `json:"pollingInterval,omitempty"`
}

// LoggingSpec configures DittoFS's logs. DittoFS reads them at boot only: a change restarts
// the pod (through the config hash).
type LoggingSpec struct {
	// Level is the lowest level logged: DEBUG, INFO, WARN or ERROR.
	// +kubebuilder:default=INFO
	// +kubebuilder:validation:Enum=DEBUG;INFO;WARN;ERROR
	// +optional
	Level string `json:"level,omitempty"`

	// Format of each line: json (one object per line, for log collectors) or text.
	// +kubebuilder:default=json
	// +kubebuilder:validation:Enum=json;text
	// +optional
	Format string `json:"format,omitempty"`
}

// NetworkPolicySpec configures the NetworkPolicy "<name>" the operator creates for the server's
// pod (ingress only; enforced only where the cluster's network plugin supports NetworkPolicy).
type NetworkPolicySpec struct {
	// Enabled creates the NetworkPolicy. With it, the REST API and metrics ports accept
	// connections only from the operator's namespace and the sources listed here; the file
	// ports (NFS, SMB) from fileFrom.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// FileFrom are the sources allowed to the file ports (NFS, SMB). Empty: any source. NFS
	// volumes are mounted by the kubelet from the node's network, which no pod or namespace
	// selector matches: list the nodes' CIDRs in an ipBlock when you restrict it.
	// +optional
	FileFrom []networkingv1.NetworkPolicyPeer `json:"fileFrom,omitempty"`

	// APIFrom are sources allowed to the REST admin API besides the operator's namespace
	// (e.g. a namespace where dfsctl runs). Ignored when spec.controlPlane.service exposes the
	// API outside the cluster: then any source may connect.
	// +optional
	APIFrom []networkingv1.NetworkPolicyPeer `json:"apiFrom,omitempty"`

	// MetricsFrom are sources allowed to the metrics port besides the operator's namespace
	// (e.g. the monitoring namespace: a namespaceSelector on kubernetes.io/metadata.name).
	// +optional
	MetricsFrom []networkingv1.NetworkPolicyPeer `json:"metricsFrom,omitempty"`
}

// ServiceSpec configures the user-facing Services.
type ServiceSpec struct {
	// Type of the "-file" Service.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`

	// Annotations of the "-file" Service (e.g. load-balancer settings). Keys removed here are
	// removed from the Service.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// SnapshotPolicySpec schedules the snapshots of one share and how long they are kept.
// +kubebuilder:validation:XValidation:rule="!has(self.ttl) || size(self.ttl) == 0 || duration(self.ttl) >= duration('1m')",message="spec.snapshotPolicies[].ttl must be at least 1m (or empty: no age bound)"
type SnapshotPolicySpec struct {
	// Share the policy snapshots, e.g. /export: a share of spec.shares, or one made with dfsctl.
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +kubebuilder:validation:MaxLength=64
	Share string `json:"share"`

	// Interval between two snapshots: a Go duration of at least 1m (6h, 1h30m) or @hourly,
	// @daily, @weekly.
	// +kubebuilder:validation:Pattern=`^(@hourly|@daily|@weekly|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$`
	// +kubebuilder:validation:XValidation:rule="self.startsWith('@') || duration(self) >= duration('1m')",message="spec.snapshotPolicies[].interval must be at least 1m, or @hourly, @daily, @weekly"
	Interval string `json:"interval"`

	// KeepLast keeps the newest N snapshots the policy took (0: no count bound).
	// +kubebuilder:validation:Minimum=0
	// +optional
	KeepLast int32 `json:"keepLast,omitempty"`

	// TTL deletes the policy's snapshots older than this Go duration (empty: no age bound).
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)?$`
	// +optional
	TTL string `json:"ttl,omitempty"`

	// Enabled takes snapshots on schedule; false keeps the policy without running it.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// ShareSpec is one share of the server.
type ShareSpec struct {
	// Name of the share, with a leading slash (e.g. /export); NFS clients mount it by this path.
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9][A-Za-z0-9._-]*$`
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`

	// ReadOnly exports the share read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`

	// DefaultPermission applies to users without an explicit grant on the share, NFS clients
	// without an identity mapping included. Unset: read for a share the operator creates (a
	// share that exists keeps the permission it has); set it to read-write for a share anyone
	// who reaches the NFS port may write to.
	// +kubebuilder:validation:Enum=none;read;read-write;admin
	// +optional
	DefaultPermission string `json:"defaultPermission,omitempty"`
}

// SMBSpec exposes the SMB adapter. The operator enables or disables the server's SMB adapter
// through the REST API and applies maxConnections as its max_connections setting; the other
// tuning fields have no matching setting in DittoFS v0.29.0 and are reported as having no effect.
type SMBSpec struct {
	// Enabled turns the server's SMB adapter on (it is switched off otherwise) and adds the
	// "smb" port to the "-file" Service.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// Port of the "-file" Service for SMB; it targets the SMB adapter (container port 1445).
	// +kubebuilder:default=12445
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`

	// MaxConnections of the SMB adapter (0 = unlimited), applied as its max_connections setting.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// MaxRequestsPerConnection caps the requests in flight on one connection. No effect on
	// DittoFS v0.29.0 (its REST API has no such setting); reported as a warning.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequestsPerConnection *int32 `json:"maxRequestsPerConnection,omitempty"`

	// Timeouts of SMB operations. No effect on DittoFS v0.29.0; reported as a warning.
	// +optional
	Timeouts *SMBTimeoutsSpec `json:"timeouts,omitempty"`

	// Credits configures SMB2 credit management. No effect on DittoFS v0.29.0; reported as a
	// warning.
	// +optional
	Credits *SMBCreditsSpec `json:"credits,omitempty"`

	// MetricsLogInterval is how often SMB metrics are logged (Go duration). No effect on
	// DittoFS v0.29.0; reported as a warning.
	// +optional
	MetricsLogInterval string `json:"metricsLogInterval,omitempty"`
}

// SMBTimeoutsSpec holds SMB timeouts (Go durations).
type SMBTimeoutsSpec struct {
	// Read timeout (Go duration). No effect on DittoFS v0.29.0, whose REST API has no such
	// setting; accepted for compatibility and reported as a warning.
	// +optional
	Read string `json:"read,omitempty"`
	// Write timeout (Go duration). No effect on DittoFS v0.29.0; reported as a warning.
	// +optional
	Write string `json:"write,omitempty"`
	// Idle timeout (Go duration). No effect on DittoFS v0.29.0; reported as a warning.
	// +optional
	Idle string `json:"idle,omitempty"`
	// Shutdown timeout (Go duration). No effect on DittoFS v0.29.0; reported as a warning.
	// +optional
	Shutdown string `json:"shutdown,omitempty"`
}

// SMBCreditsSpec holds SMB2 credit settings (flow control: how many operations a client may
// have outstanding). DittoFS v0.29.0 has these settings in its SMB adapter but its REST API
// does not set them: every field here has no effect, is accepted for compatibility and is
// reported as a warning.
type SMBCreditsSpec struct {
	// Strategy of credit grants: fixed (always initialGrant), echo (what the client asks,
	// within bounds) or adaptive (follows the server's load; DittoFS's default). No effect.
	// +kubebuilder:validation:Enum=fixed;echo;adaptive
	// +optional
	Strategy string `json:"strategy,omitempty"`
	// MinGrant is the fewest credits granted per response (DittoFS default 16). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinGrant *int32 `json:"minGrant,omitempty"`
	// MaxGrant is the most credits granted per response (DittoFS default 8192). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxGrant *int32 `json:"maxGrant,omitempty"`
	// InitialGrant is the credits granted to NEGOTIATE and SESSION_SETUP (DittoFS default
	// 256). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	InitialGrant *int32 `json:"initialGrant,omitempty"`
	// MaxSessionCredits caps the outstanding credits of one session (DittoFS default 65535).
	// No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxSessionCredits *int32 `json:"maxSessionCredits,omitempty"`
	// LoadThresholdHigh is the number of active requests above which the adaptive strategy
	// throttles (DittoFS default 1000). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	LoadThresholdHigh *int32 `json:"loadThresholdHigh,omitempty"`
	// LoadThresholdLow is the number of active requests below which the adaptive strategy
	// grants more (DittoFS default 100). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	LoadThresholdLow *int32 `json:"loadThresholdLow,omitempty"`
	// AggressiveClientThreshold is the outstanding requests of one session above which the
	// adaptive strategy throttles it (DittoFS default 256). No effect.
	// +kubebuilder:validation:Minimum=1
	// +optional
	AggressiveClientThreshold *int32 `json:"aggressiveClientThreshold,omitempty"`
}

// S3Spec configures the S3 remote block store.
// +kubebuilder:validation:XValidation:rule="has(self.bucket) && size(self.bucket) > 0",message="spec.s3.bucket is required: name the bucket of the remote block store, or remove spec.s3"
type S3Spec struct {
	// CredentialsSecretRef names the Secret with the S3 credentials. A missing Secret is a
	// warning, not an error (it may be created later, e.g. by external-secrets).
	// +optional
	CredentialsSecretRef *S3CredentialsSecretRef `json:"credentialsSecretRef,omitempty"`

	// Region of the bucket.
	// +kubebuilder:default="eu-west-1"
	// +optional
	Region string `json:"region,omitempty"`

	// Bucket name.
	// +optional
	Bucket string `json:"bucket,omitempty"`

	// AllowPrivateEndpoint lets the endpoint (the Secret's endpoint key) be cluster-internal
	// (a Service name, *.svc) or on a private network (10/8, 172.16/12, 192.168/16, fc00::/7).
	// DittoFS refuses such endpoints unless told otherwise (its guard against server-side
	// request forgery); set it only for an S3 service you run, such as MinIO in the cluster.
	// Loopback and link-local endpoints (169.254.169.254 is the cloud metadata service) are
	// refused whatever this says.
	// +optional
	AllowPrivateEndpoint bool `json:"allowPrivateEndpoint,omitempty"`
}

// S3CredentialsSecretRef names a Secret and its keys.
type S3CredentialsSecretRef struct {
	// SecretName in the DittoServer's namespace.
	// +kubebuilder:validation:MinLength=1
	SecretName string `json:"secretName"`

	// AccessKeyIDKey is the key holding the access key id.
	// +kubebuilder:default=accessKeyId
	// +optional
	AccessKeyIDKey string `json:"accessKeyIdKey,omitempty"`

	// SecretAccessKeyKey is the key holding the secret access key.
	// +kubebuilder:default=secretAccessKey
	// +optional
	SecretAccessKeyKey string `json:"secretAccessKeyKey,omitempty"`

	// EndpointKey is the key holding the endpoint URL (optional in the Secret).
	// +kubebuilder:default=endpoint
	// +optional
	EndpointKey string `json:"endpointKey,omitempty"`
}

// PerconaSpec provisions a PerconaPGCluster "<name>-postgres".
type PerconaSpec struct {
	// Enabled creates the cluster and runs DittoFS on it.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// DeleteWithServer deletes the PostgreSQL cluster, and its data, with the DittoServer.
	// Otherwise the cluster is orphaned and kept.
	// +kubebuilder:default=false
	// +optional
	DeleteWithServer bool `json:"deleteWithServer,omitempty"`

	// Replicas of PostgreSQL instances.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// StorageSize of each instance volume.
	// +kubebuilder:default="10Gi"
	// +kubebuilder:validation:Pattern=`^[0-9]+(Mi|Gi|Ti)$`
	// +optional
	StorageSize string `json:"storageSize,omitempty"`

	// StorageClassName of the instance volumes.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// DatabaseName owned by the "dittofs" user.
	// +kubebuilder:default=dittofs
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	DatabaseName string `json:"databaseName,omitempty"`

	// SSLMode of DittoFS's connections to the cluster. verify-full (default) checks the
	// cluster's certificate against the CA Percona keeps in the Secret
	// "<cluster>-cluster-cert" (key ca.crt) and that it names the primary Service DittoFS
	// connects to; require encrypts without checking who answers (for a cluster whose
	// certificate does not name that Service, e.g. a custom TLS Secret).
	// +kubebuilder:validation:Enum=verify-full;require
	// +kubebuilder:default=verify-full
	// +optional
	SSLMode string `json:"sslMode,omitempty"`

	// Backup configures pgBackRest backups to S3.
	// +optional
	Backup *PerconaBackupSpec `json:"backup,omitempty"`
}

// PerconaBackupSpec configures pgBackRest repo1 on S3.
// +kubebuilder:validation:XValidation:rule="!self.enabled || (has(self.bucket) && size(self.bucket) > 0)",message="spec.percona.backup.bucket is required when spec.percona.backup.enabled is true; set the bucket name or disable backups"
// +kubebuilder:validation:XValidation:rule="!self.enabled || (has(self.endpoint) && size(self.endpoint) > 0)",message="spec.percona.backup.endpoint is required when spec.percona.backup.enabled is true; set the S3 endpoint (e.g. s3.eu-west-1.amazonaws.com) or disable backups"
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.credentialsSecretRef)",message="spec.percona.backup.credentialsSecretRef is required when spec.percona.backup.enabled is true: pgBackRest needs the S3 key (a Secret with an ini file holding repo1-s3-key and repo1-s3-key-secret, see docs/PERCONA.md)"
type PerconaBackupSpec struct {
	// Enabled turns backups on.
	// +kubebuilder:default=false
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// CredentialsSecretRef names the Secret with the pgBackRest S3 credentials.
	// +optional
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// Bucket for backups.
	// +optional
	Bucket string `json:"bucket,omitempty"`

	// Endpoint of the S3 service.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Region of the bucket.
	// +kubebuilder:default="eu-west-1"
	// +optional
	Region string `json:"region,omitempty"`

	// FullSchedule is the cron schedule of full backups.
	// +kubebuilder:default="0 2 * * *"
	// +optional
	FullSchedule string `json:"fullSchedule,omitempty"`

	// IncrSchedule is the cron schedule of incremental backups.
	// +kubebuilder:default="0 * * * *"
	// +optional
	IncrSchedule string `json:"incrSchedule,omitempty"`

	// RetentionDays of full backups.
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	// +optional
	RetentionDays *int32 `json:"retentionDays,omitempty"`
}

// Phase is the coarse lifecycle state of a DittoServer.
// +kubebuilder:validation:Enum=Pending;Running;Stopped;Failed;Deleting
type Phase string

// Phases.
const (
	PhasePending  Phase = "Pending"
	PhaseRunning  Phase = "Running"
	PhaseStopped  Phase = "Stopped"
	PhaseFailed   Phase = "Failed"
	PhaseDeleting Phase = "Deleting"
)

// DittoServerStatus is the observed state. The Go controller owns every field but
// deployedRelease and the conditions Initialized, Deployed, ReleaseFailed, Irreconcilable and
// Paused, which the Helm reconciler owns.
type DittoServerStatus struct {
	// ObservedGeneration is the generation the Go controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarises the state: Pending, Running, Stopped, Failed or Deleting.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Replicas is the number of pods the StatefulSet wants.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of ready pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// AvailableReplicas is the number of available pods.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`

	// ConfigHash is the hash of the rendered config.yaml and of every referenced Secret key;
	// the pod template carries it, so a change rolls the pod.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`

	// NFSEndpoint is "<name>-file.<namespace>.svc:<nfsPort>".
	// +optional
	NFSEndpoint string `json:"nfsEndpoint,omitempty"`

	// SMBEndpoint is "<name>-file.<namespace>.svc:<smb.port>" when SMB is enabled.
	// +optional
	SMBEndpoint string `json:"smbEndpoint,omitempty"`

	// APIEndpoint is "<name>-api.<namespace>.svc:<controlPlane.port>".
	// +optional
	APIEndpoint string `json:"apiEndpoint,omitempty"`

	// Addresses are where NFS and SMB clients reach the server without cluster DNS: the "-file"
	// Service's cluster IP and, for a LoadBalancer, its ingress IPs or host names (once the
	// cloud assigns them). Kubelet mounts on the nodes cannot resolve ".svc" names: use these.
	// +optional
	// +listType=atomic
	Addresses []string `json:"addresses,omitempty"`

	// Image is the DittoFS image of the server's pod template: spec.image, or the operator's
	// default (its RELATED_IMAGE_DITTOFS) when spec.image is empty.
	// +optional
	Image string `json:"image,omitempty"`

	// PerconaClusterName is the PerconaPGCluster the server uses, when Percona is enabled.
	// +optional
	PerconaClusterName string `json:"perconaClusterName,omitempty"`

	// ServiceMonitor is the ServiceMonitor the operator made for the server
	// (spec.metrics.serviceMonitor), deleted when the spec no longer asks for it.
	// +optional
	ServiceMonitor string `json:"serviceMonitor,omitempty"`

	// DeployedRelease is the Helm release of the stateless objects (written by the Helm
	// reconciler; the rendered manifest is deliberately not copied here).
	// +optional
	DeployedRelease *DeployedRelease `json:"deployedRelease,omitempty"`

	// Conditions: ConfigReady, DatabaseReady, Available, Progressing, ControlPlaneReady,
	// StorageReady, Ready (Go controller) and
	// Initialized, Deployed, ReleaseFailed, Irreconcilable, Paused (Helm reconciler).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// DeployedRelease names the Helm release.
type DeployedRelease struct {
	// Name of the release.
	// +optional
	Name string `json:"name,omitempty"`
}

// DittoServer runs one DittoFS file server.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ditto;dittofs,categories=storage
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.nfsEndpoint`,priority=1
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.status.addresses[-1:]`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
type DittoServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DittoServerSpec   `json:"spec"`
	Status DittoServerStatus `json:"status,omitempty"`
}

// DittoServerList is a list of DittoServers.
//
// +kubebuilder:object:root=true
type DittoServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DittoServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DittoServer{}, &DittoServerList{})
}
