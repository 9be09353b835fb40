package specs

import (
	"path"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// InitContainerWaitForPostgres waits for PostgreSQL before dfs starts (dfs exits at once when
// it is unreachable).
const InitContainerWaitForPostgres = "wait-for-postgres"

// StatefulSetInputs is what the builder needs beyond the spec: values the controller resolved.
type StatefulSetInputs struct {
	Image         string
	ConfigHash    string
	JWTSecret     SecretKey
	AdminPassword SecretKey
	// PostgresSecret is the operator-owned Secret with the discrete PostgreSQL keys
	// (host, port, database, user, password, sslmode); empty for SQLite.
	PostgresSecret string
	// PerconaSecret is the Percona user Secret (keys host, port, dbname, user, password). It
	// wins over PostgresSecret and adds the wait-for-postgres init container.
	PerconaSecret string
	// PostgresClientImage runs the init container; empty means PostgresClientImage().
	PostgresClientImage string
	// RemoteStoreUpdated is the operator Secret's AnnotationRemoteStoreUpdated ("" when no
	// store was ever updated): a new value restarts the pod.
	RemoteStoreUpdated string
	// KerberosUpdated is the operator Secret's AnnotationKerberosUpdated ("" when the operator
	// never wrote Kerberos settings through the API): a new value restarts the pod.
	KerberosUpdated string
	// Volumes are the claim templates, in order; nil means PlanVolumes for a server without
	// claims yet. An existing StatefulSet keeps its own (they cannot change).
	Volumes []string
}

func podAnnotations(inputs StatefulSetInputs) map[string]string {
	a := map[string]string{AnnotationConfigHash: inputs.ConfigHash}
	if inputs.RemoteStoreUpdated != "" {
		a[AnnotationRemoteStoreUpdated] = inputs.RemoteStoreUpdated
	}
	if inputs.KerberosUpdated != "" {
		a[AnnotationKerberosUpdated] = inputs.KerberosUpdated
	}
	return a
}

// userEnv is spec.env without the names the operator or DittoFS's configuration own
// (validation refuses them with a message; a name set twice would fail server-side apply).
func userEnv(env []corev1.EnvVar) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, e := range env {
		if !ReservedEnvName(e.Name) {
			out = append(out, e)
		}
	}
	return out
}

// TerminationGracePeriodSeconds covers the preStop sleep and dfs's own shutdown bound
// (3*shutdown_timeout+5s), plus a margin.
func TerminationGracePeriodSeconds() int64 {
	return PreStopSleepSeconds + 3*ShutdownTimeoutSeconds + 5 + 5
}

// DesiredStatefulSet builds the server's StatefulSet. It is a pure function of its inputs.
func DesiredStatefulSet(in *v1alpha1.DittoServer, inputs StatefulSetInputs) *appsv1.StatefulSet {
	ds := in.DeepCopy()
	ds.Default()
	s := &ds.Spec

	labels := CommonLabels(ds, "server")
	volumes := inputs.Volumes
	if volumes == nil {
		volumes = PlanVolumes(ds, nil)
	}
	mounts := []corev1.VolumeMount{
		{Name: VolumeConfig, MountPath: ConfigMountPath, ReadOnly: true},
		{Name: VolumeTmp, MountPath: TmpMountPath},
	}
	claims := make([]corev1.PersistentVolumeClaim, 0, len(volumes))
	for _, v := range volumes {
		claims = append(claims, claim(ds, v, VolumeSize(ds, v)))
		mounts = append(mounts, corev1.VolumeMount{Name: v, MountPath: MountPath(v)})
	}
	podVolumes := []corev1.Volume{
		{Name: VolumeConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(ds)},
		}}},
		{Name: VolumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if inputs.PerconaSecret != "" && s.PerconaSSLMode() == v1alpha1.PerconaSSLVerifyFull {
		podVolumes = append(podVolumes, corev1.Volume{Name: VolumePostgresCA, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: PerconaCASecretName(ds),
			Items:      []corev1.KeyToPath{{Key: PerconaCAKey, Path: PerconaCAKey}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumePostgresCA, MountPath: PostgresCAMountPath, ReadOnly: true})
	}
	if secret := APITLSSecretName(ds); secret != "" {
		// Only the serving pair: the CA's key (mode Operator) stays out of the pod.
		podVolumes = append(podVolumes, corev1.Volume{Name: VolumeAPITLS, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret,
			Items:      []corev1.KeyToPath{{Key: APITLSCert, Path: APITLSCert}, {Key: APITLSKey, Path: APITLSKey}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeAPITLS, MountPath: APITLSMountPath, ReadOnly: true})
	}
	if ref := s.MetricsTokenRef(); ref != nil {
		podVolumes = append(podVolumes, corev1.Volume{Name: VolumeMetricsToken, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: ref.Name,
			Items:      []corev1.KeyToPath{{Key: ref.Key, Path: "token"}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeMetricsToken, MountPath: MetricsTokenMountPath, ReadOnly: true})
	}
	podVolumes, mounts = identityVolumes(s, podVolumes, mounts)

	container := corev1.Container{
		Name:            ContainerName,
		Image:           inputs.Image,
		ImagePullPolicy: s.ImagePullPolicy,
		Command:         []string{DittoFSBinary},
		Args:            []string{"start", "--foreground", "--config", ConfigMountPath + "/" + ConfigFileName},
		Env:             append(userEnv(s.Env), containerEnv(s, inputs)...),
		Ports:           containerPorts(s),
		VolumeMounts:    mounts,
		Resources:       *s.Resources.DeepCopy(),
		StartupProbe:    httpProbe(ds, "/health", 5, 30),
		LivenessProbe:   httpProbe(ds, "/health", 10, 3),
		ReadinessProbe:  httpProbe(ds, "/health/ready", 5, 3),
		Lifecycle: &corev1.Lifecycle{
			PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: PreStopSleepSeconds}},
		},
		SecurityContext:          ContainerSecurityContext(s.SecurityContext),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}

	return &appsv1.StatefulSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ds.Name,
			Namespace: ds.Namespace,
			Labels:    labels,
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(s.EffectiveReplicas()),
			ServiceName:         HeadlessServiceName(ds),
			Selector:            &metav1.LabelSelector{MatchLabels: SelectorLabels(ds)},
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      withUserEntries(s.PodLabels, labels),
					Annotations: withUserEntries(s.PodAnnotations, podAnnotations(inputs)),
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					// Service links would put <SERVICE>_PORT variables into the env; DittoFS reads
					// every DITTOFS_* variable as config, so a Service named dittofs-... could
					// change the server's settings.
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To(TerminationGracePeriodSeconds()),
					SecurityContext:               PodSecurityContext(s.PodSecurityContext),
					ImagePullSecrets:              s.ImagePullSecrets,
					NodeSelector:                  s.NodeSelector,
					Tolerations:                   s.Tolerations,
					Affinity:                      s.Affinity,
					TopologySpreadConstraints:     s.TopologySpreadConstraints,
					PriorityClassName:             s.PriorityClassName,
					InitContainers:                initContainers(s, inputs),
					Containers:                    []corev1.Container{container},
					Volumes:                       podVolumes,
				},
			},
			VolumeClaimTemplates: claims,
		},
	}
}

// identityVolumes mounts the files spec.identity.ldap and spec.identity.kerberos name: the
// directory's CA, the keytab and krb5.conf. The Kerberos files are readable by owner and group
// only (0440): DittoFS reads them through the pod's fsGroup.
func identityVolumes(s *v1alpha1.DittoServerSpec, volumes []corev1.Volume, mounts []corev1.VolumeMount) ([]corev1.Volume, []corev1.VolumeMount) {
	if l := s.Identity.LDAP; l != nil && l.CASecretRef != nil {
		volumes = append(volumes, corev1.Volume{Name: VolumeLDAPCA, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: l.CASecretRef.Name,
			Items:      []corev1.KeyToPath{{Key: l.CASecretRef.Key, Path: path.Base(LDAPCAFile)}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeLDAPCA, MountPath: LDAPCAMountPath, ReadOnly: true})
	}
	if k := s.Identity.Kerberos; k != nil {
		items := []corev1.KeyToPath{
			{Key: k.KeytabSecretRef.Key, Path: path.Base(KerberosKeytabFile)},
			{Key: k.Krb5ConfKeyOrDefault(), Path: path.Base(KerberosKrb5Conf)},
		}
		// Optional: turning Kerberos off (enabled: false) must not need the Secret, nor change
		// the pod template.
		volumes = append(volumes, corev1.Volume{Name: VolumeKerberos, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: k.KeytabSecretRef.Name, Items: items, DefaultMode: ptr.To(int32(0o440)), Optional: ptr.To(true),
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeKerberos, MountPath: KerberosMountPath, ReadOnly: true})
	}
	return volumes, mounts
}

func containerEnv(s *v1alpha1.DittoServerSpec, in StatefulSetInputs) []corev1.EnvVar {
	env := []corev1.EnvVar{
		// The image runs as a user without a home directory; keep anything dfs writes under
		// $HOME on the writable /tmp volume.
		{Name: "HOME", Value: TmpMountPath},
		secretEnv(EnvJWTSecret, in.JWTSecret.Name, in.JWTSecret.Key),
		secretEnv(EnvAdminPassword, in.AdminPassword.Name, in.AdminPassword.Key),
	}
	switch {
	case in.PerconaSecret != "":
		for _, e := range PerconaEnvKeys {
			env = append(env, secretEnv(e.Env, in.PerconaSecret, e.Key))
		}
		env = append(env, corev1.EnvVar{Name: EnvPostgresSSLMode, Value: s.PerconaSSLMode()})
		if s.PerconaSSLMode() == v1alpha1.PerconaSSLVerifyFull {
			env = append(env, corev1.EnvVar{Name: EnvPostgresSSLRootCert, Value: PostgresCAMountPath + "/" + PerconaCAKey})
		}
	case in.PostgresSecret != "":
		for _, e := range PostgresEnvKeys {
			env = append(env, secretEnv(e.Env, in.PostgresSecret, e.Key))
		}
	}
	return env
}

// initContainers waits for a Percona cluster to accept connections before dfs starts: dfs exits
// 1 when PostgreSQL is unreachable at boot and never retries. The wait is
// bounded (PostgresWaitTimeoutSeconds); the pod then restarts with the usual back-off. It reads
// the host, port and user from the same Secret keys as the server, never the password.
func initContainers(s *v1alpha1.DittoServerSpec, in StatefulSetInputs) []corev1.Container {
	if in.PerconaSecret == "" {
		return nil
	}
	image := in.PostgresClientImage
	if image == "" {
		image = PostgresClientImage()
	}
	var env []corev1.EnvVar
	for _, e := range PerconaEnvKeys {
		if e.Env == EnvPostgresHost || e.Env == EnvPostgresPort || e.Env == EnvPostgresUser {
			env = append(env, secretEnv(e.Env, in.PerconaSecret, e.Key))
		}
	}
	return []corev1.Container{{
		Name:            InitContainerWaitForPostgres,
		Image:           image,
		ImagePullPolicy: s.ImagePullPolicy,
		Command:         []string{"/bin/sh", "-c", PostgresWaitScript()},
		Env:             env,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext:          ContainerSecurityContext(nil),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}}
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret},
		Key:                  key,
	}}}
}

func containerPorts(s *v1alpha1.DittoServerSpec) []corev1.ContainerPort {
	ports := []corev1.ContainerPort{
		{Name: "api", ContainerPort: s.APIPort(), Protocol: corev1.ProtocolTCP},
		{Name: "nfs", ContainerPort: NFSAdapterPort, Protocol: corev1.ProtocolTCP},
	}
	if s.SMBEnabled() {
		ports = append(ports, corev1.ContainerPort{Name: "smb", ContainerPort: SMBAdapterPort, Protocol: corev1.ProtocolTCP})
	}
	if s.MetricsEnabled() {
		ports = append(ports, corev1.ContainerPort{Name: "metrics", ContainerPort: s.MetricsPort(), Protocol: corev1.ProtocolTCP})
	}
	return ports
}

// httpProbe probes the API port, over HTTPS when it serves TLS (the kubelet does not verify
// the certificate of a probe).
func httpProbe(ds *v1alpha1.DittoServer, path string, period, failures int32) *corev1.Probe {
	scheme := corev1.URISchemeHTTP
	if ds.Spec.APITLSEnabled() {
		scheme = corev1.URISchemeHTTPS
	}
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromInt32(ds.Spec.APIPort()), Scheme: scheme,
		}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   3,
		SuccessThreshold: 1,
	}
}

func claim(ds *v1alpha1.DittoServer, name, size string) corev1.PersistentVolumeClaim {
	return corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: CommonLabels(ds, name),
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ds.Spec.Storage.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			},
		},
	}
}

// PodSecurityContext is the restricted default with the user's values on top.
func PodSecurityContext(user *corev1.PodSecurityContext) *corev1.PodSecurityContext {
	out := &corev1.PodSecurityContext{}
	if user != nil {
		out = user.DeepCopy()
	}
	orDefault(&out.RunAsNonRoot, true)
	orDefault(&out.RunAsUser, DittoFSUID)
	orDefault(&out.RunAsGroup, DittoFSUID)
	orDefault(&out.FSGroup, DittoFSUID)
	orDefault(&out.SeccompProfile, corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault})
	return out
}

// ContainerSecurityContext is the restricted default with the user's values on top; ALL
// capabilities are always dropped.
func ContainerSecurityContext(user *corev1.SecurityContext) *corev1.SecurityContext {
	out := &corev1.SecurityContext{}
	if user != nil {
		out = user.DeepCopy()
	}
	orDefault(&out.AllowPrivilegeEscalation, false)
	orDefault(&out.RunAsNonRoot, true)
	orDefault(&out.ReadOnlyRootFilesystem, true)
	orDefault(&out.SeccompProfile, corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault})
	orDefault(&out.Capabilities, corev1.Capabilities{})
	if !slices.Contains(out.Capabilities.Drop, "ALL") {
		out.Capabilities.Drop = append(out.Capabilities.Drop, "ALL")
	}
	return out
}

// orDefault sets *field to v when the user left it unset.
func orDefault[T any](field **T, v T) {
	if *field == nil {
		*field = &v
	}
}
