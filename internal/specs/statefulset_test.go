package specs

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

func server(mutate func(*v1alpha1.DittoServerSpec)) *v1alpha1.DittoServer {
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "ns"},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	if mutate != nil {
		mutate(&ds.Spec)
	}
	return ds
}

var inputs = StatefulSetInputs{
	Image: "img:1", ConfigHash: "abc",
	JWTSecret: SecretKey{"j", "secret"}, AdminPassword: SecretKey{"a", "password"},
}

func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			out[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		default:
			out[e.Name] = e.Value
		}
	}
	return out
}

func TestDesiredStatefulSet(t *testing.T) {
	tests := map[string]struct {
		mutate func(*v1alpha1.DittoServerSpec)
		inputs func(*StatefulSetInputs)
		check  func(t *testing.T, c corev1.Container, pod corev1.PodSpec, claims []string)
	}{
		"defaults": {
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, claims []string) {
				assert.Equal(t, []string{"controlplane", "metadata", "cache"}, claims)
				assert.Equal(t, map[string]string{
					"HOME":                           "/tmp",
					"DITTOFS_CONTROLPLANE_SECRET":    "secret:j/secret",
					"DITTOFS_ADMIN_INITIAL_PASSWORD": "secret:a/password",
				}, envOf(c))
				assert.Equal(t, []string{"api", "nfs", "metrics"}, portNames(c), "metrics are on by default")
				assert.Empty(t, pod.InitContainers, "no wait for PostgreSQL on SQLite")
				assert.False(t, *pod.EnableServiceLinks, "service links would inject DITTOFS_* lookalike env")
			},
		},
		"metrics off": {
			mutate: func(s *v1alpha1.DittoServerSpec) { s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(false)} },
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, _ []string) {
				assert.Equal(t, []string{"api", "nfs"}, portNames(c))
			},
		},
		"metrics token": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Metrics = &v1alpha1.MetricsSpec{BearerTokenSecretRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "scrape"}, Key: "tok"}}
			},
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, _ []string) {
				var vol *corev1.Volume
				for i := range pod.Volumes {
					if pod.Volumes[i].Name == "metrics-token" {
						vol = &pod.Volumes[i]
					}
				}
				require.NotNil(t, vol, "the token Secret is a volume")
				require.NotNil(t, vol.Secret)
				assert.Equal(t, "scrape", vol.Secret.SecretName)
				assert.Equal(t, []corev1.KeyToPath{{Key: "tok", Path: "token"}}, vol.Secret.Items, "the key becomes the file DittoFS reads")
				assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "metrics-token", MountPath: "/var/run/dittofs/metrics-token", ReadOnly: true})
				for _, e := range c.Env {
					assert.NotEqual(t, "tok", keyOf(e), "the token is a file, not env")
				}
			},
		},
		"content volume, smb and metrics": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Storage.ContentSize = "5Gi"
				s.SMB = &v1alpha1.SMBSpec{Enabled: true}
				s.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true), Port: 9100}
				s.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 9000}
			},
			check: func(t *testing.T, c corev1.Container, _ corev1.PodSpec, claims []string) {
				assert.Equal(t, []string{"controlplane", "metadata", "content"}, claims, "the content volume holds the files: no cache volume nothing uses")
				ports := map[string]int32{}
				for _, p := range c.Ports {
					ports[p.Name] = p.ContainerPort
				}
				assert.Equal(t, map[string]int32{"api": 9000, "nfs": 12049, "smb": 1445, "metrics": 9100}, ports)
				assert.Equal(t, int32(9000), c.LivenessProbe.HTTPGet.Port.IntVal)
			},
		},
		"postgres env from the operator-owned Secret": {
			inputs: func(in *StatefulSetInputs) { in.PostgresSecret = "ds-db-credentials" },
			check: func(t *testing.T, c corev1.Container, _ corev1.PodSpec, _ []string) {
				env := envOf(c)
				assert.Equal(t, "secret:ds-db-credentials/host", env["DITTOFS_DATABASE_POSTGRES_HOST"])
				assert.Equal(t, "secret:ds-db-credentials/password", env["DITTOFS_DATABASE_POSTGRES_PASSWORD"])
				assert.Equal(t, "secret:ds-db-credentials/sslmode", env["DITTOFS_DATABASE_POSTGRES_SSLMODE"])
				assert.NotContains(t, env, "DATABASE_URL")
			},
		},
		"percona, sslMode verify-full: the cluster's CA mounted, its certificate checked": {
			mutate: func(s *v1alpha1.DittoServerSpec) { s.Percona = &v1alpha1.PerconaSpec{Enabled: true} },
			inputs: func(in *StatefulSetInputs) { in.PerconaSecret = "ds-postgres-pguser-dittofs" },
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, _ []string) {
				env := envOf(c)
				assert.Equal(t, "verify-full", env["DITTOFS_DATABASE_POSTGRES_SSLMODE"], "the default")
				assert.Equal(t, "/var/run/dittofs/postgres-ca/ca.crt", env["DITTOFS_DATABASE_POSTGRES_SSL_ROOT_CERT"])
				var vol *corev1.Volume
				for i := range pod.Volumes {
					if pod.Volumes[i].Name == "postgres-ca" {
						vol = &pod.Volumes[i]
					}
				}
				require.NotNil(t, vol)
				assert.Equal(t, "ds-postgres-cluster-cert", vol.Secret.SecretName, "where Percona keeps the cluster's CA")
				assert.Equal(t, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}, vol.Secret.Items, "the CA only, never the cluster's key")
				assert.Contains(t, c.VolumeMounts, corev1.VolumeMount{Name: "postgres-ca", MountPath: "/var/run/dittofs/postgres-ca", ReadOnly: true})
			},
		},
		"percona: env from the Percona user Secret, sslmode require, wait-for-postgres init container": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, SSLMode: "require"}
			},
			inputs: func(in *StatefulSetInputs) {
				in.PerconaSecret = "ds-postgres-pguser-dittofs"
				in.PostgresSecret = "ignored-when-percona"
			},
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, _ []string) {
				env := envOf(c)
				assert.Equal(t, "secret:ds-postgres-pguser-dittofs/host", env["DITTOFS_DATABASE_POSTGRES_HOST"])
				assert.Equal(t, "secret:ds-postgres-pguser-dittofs/port", env["DITTOFS_DATABASE_POSTGRES_PORT"])
				assert.Equal(t, "secret:ds-postgres-pguser-dittofs/dbname", env["DITTOFS_DATABASE_POSTGRES_DATABASE"])
				assert.Equal(t, "secret:ds-postgres-pguser-dittofs/user", env["DITTOFS_DATABASE_POSTGRES_USER"])
				assert.Equal(t, "secret:ds-postgres-pguser-dittofs/password", env["DITTOFS_DATABASE_POSTGRES_PASSWORD"])
				assert.Equal(t, "require", env["DITTOFS_DATABASE_POSTGRES_SSLMODE"], "Percona accepts only TLS; DittoFS defaults to disable")
				assert.NotContains(t, env, "DITTOFS_DATABASE_POSTGRES_SSL_ROOT_CERT")
				for _, v := range pod.Volumes {
					assert.NotEqual(t, "postgres-ca", v.Name, "no CA to mount with require")
				}
				require.Len(t, pod.InitContainers, 1)
				ic := pod.InitContainers[0]
				assert.Equal(t, InitContainerWaitForPostgres, ic.Name)
				assert.Equal(t, DefaultPostgresClientImage, ic.Image)
				assert.Equal(t, []string{"/bin/sh", "-c", PostgresWaitScript()}, ic.Command)
				assert.Equal(t, map[string]string{
					"DITTOFS_DATABASE_POSTGRES_HOST": "secret:ds-postgres-pguser-dittofs/host",
					"DITTOFS_DATABASE_POSTGRES_PORT": "secret:ds-postgres-pguser-dittofs/port",
					"DITTOFS_DATABASE_POSTGRES_USER": "secret:ds-postgres-pguser-dittofs/user",
				}, envOf(ic), "the init container never sees the password")
				assert.True(t, *ic.SecurityContext.ReadOnlyRootFilesystem)
			},
		},
		"postgres client image override": {
			inputs: func(in *StatefulSetInputs) {
				in.PerconaSecret = "s"
				in.PostgresClientImage = "registry.local/postgres:17"
			},
			check: func(t *testing.T, _ corev1.Container, pod corev1.PodSpec, _ []string) {
				require.Len(t, pod.InitContainers, 1)
				assert.Equal(t, "registry.local/postgres:17", pod.InitContainers[0].Image)
			},
		},
		"user security context wins but ALL stays dropped": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.SecurityContext = &corev1.SecurityContext{
					ReadOnlyRootFilesystem: ptr.To(false),
					Capabilities:           &corev1.Capabilities{Drop: []corev1.Capability{"NET_RAW"}},
				}
				s.PodSecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To(int64(2000))}
			},
			check: func(t *testing.T, c corev1.Container, pod corev1.PodSpec, _ []string) {
				assert.False(t, *c.SecurityContext.ReadOnlyRootFilesystem)
				assert.ElementsMatch(t, []corev1.Capability{"NET_RAW", "ALL"}, c.SecurityContext.Capabilities.Drop)
				assert.Equal(t, int64(2000), *pod.SecurityContext.FSGroup)
				assert.True(t, *pod.SecurityContext.RunAsNonRoot)
			},
		},
		"replicas 0 stops the server": {
			mutate: func(s *v1alpha1.DittoServerSpec) { s.Replicas = ptr.To(int32(0)) },
			check:  func(t *testing.T, _ corev1.Container, _ corev1.PodSpec, _ []string) {},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := inputs
			if tc.inputs != nil {
				tc.inputs(&in)
			}
			ds := server(tc.mutate)
			sts := DesiredStatefulSet(ds, in)
			pod := sts.Spec.Template.Spec
			require.Len(t, pod.Containers, 1)
			var claims []string
			for _, c := range sts.Spec.VolumeClaimTemplates {
				claims = append(claims, c.Name)
			}
			assert.Equal(t, ds.Spec.EffectiveReplicas(), *sts.Spec.Replicas)
			assert.Equal(t, "abc", sts.Spec.Template.Annotations[AnnotationConfigHash])
			tc.check(t, pod.Containers[0], pod, claims)
			assertRestricted(t, &sts.Spec.Template.ObjectMeta, &pod)
		})
	}
}

// assertRestricted runs the Pod Security "restricted" policy of the API server's admission.
func assertRestricted(t *testing.T, meta *metav1.ObjectMeta, pod *corev1.PodSpec) {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	require.NoError(t, err)
	results := evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, meta, pod)
	for _, r := range results {
		assert.True(t, r.Allowed, "Pod Security restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
	}
}

func TestTerminationGraceCoversShutdown(t *testing.T) {
	// dfs exits by itself after 3*shutdown_timeout+5s; the preStop sleep comes first.
	assert.Greater(t, TerminationGracePeriodSeconds(), int64(PreStopSleepSeconds+3*ShutdownTimeoutSeconds+5))
	assert.Equal(t, int64(105), TerminationGracePeriodSeconds())
}

func TestPostgresClientImageFromEnv(t *testing.T) {
	t.Setenv(EnvRelatedImagePostgresClient, "")
	assert.Equal(t, DefaultPostgresClientImage, PostgresClientImage())
	t.Setenv(EnvRelatedImagePostgresClient, "mirror.local/postgres:17-alpine")
	assert.Equal(t, "mirror.local/postgres:17-alpine", PostgresClientImage())
}

// TestRemoteStoreUpdateRestartsThePod: an update of the S3 store changes the pod template (a
// restart); without one the template carries no such annotation.
func TestRemoteStoreUpdateRestartsThePod(t *testing.T) {
	in := inputs
	plain := DesiredStatefulSet(server(nil), in).Spec.Template.Annotations
	assert.NotContains(t, plain, AnnotationRemoteStoreUpdated)
	in.RemoteStoreUpdated = "2026-11-27T02:50:00Z"
	updated := DesiredStatefulSet(server(nil), in).Spec.Template.Annotations
	assert.Equal(t, "2026-11-27T02:50:00Z", updated[AnnotationRemoteStoreUpdated])
	assert.Equal(t, plain[AnnotationConfigHash], updated[AnnotationConfigHash], "the configuration itself is unchanged")
}

// TestPodPlacementAndMetadata: the scheduling fields reach the pod as given; pod labels,
// annotations and env are added to the operator's, never over them; a server without them
// renders the same pod template as before they existed (no restart on upgrade).
func TestPodPlacementAndMetadata(t *testing.T) {
	plain := DesiredStatefulSet(server(nil), inputs)
	spread := corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway}
	affinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvme"}}}}},
	}}}
	ds := server(func(s *v1alpha1.DittoServerSpec) {
		s.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
		s.Tolerations = []corev1.Toleration{{Key: "storage", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		s.Affinity = affinity
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{spread}
		s.PriorityClassName = "storage-critical"
		s.PodLabels = map[string]string{"team": "storage", LabelInstance: "hijack"}
		s.PodAnnotations = map[string]string{"backup.velero.io/backup-volumes": "metadata", AnnotationConfigHash: "hijack"}
		s.Env = []corev1.EnvVar{
			{Name: "TZ", Value: "Europe/Rome"},
			{Name: "GOMEMLIMIT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "tuning"}, Key: "mem"}}},
			{Name: "DITTOFS_CONTROLPLANE_PORT", Value: "1"},
			{Name: "HOME", Value: "/root"},
		}
	})
	sts := DesiredStatefulSet(ds, inputs)
	pod := sts.Spec.Template
	assert.Equal(t, ds.Spec.NodeSelector, pod.Spec.NodeSelector)
	assert.Equal(t, ds.Spec.Tolerations, pod.Spec.Tolerations)
	assert.Equal(t, affinity, pod.Spec.Affinity)
	assert.Equal(t, []corev1.TopologySpreadConstraint{spread}, pod.Spec.TopologySpreadConstraints)
	assert.Equal(t, "storage-critical", pod.Spec.PriorityClassName)

	assert.Equal(t, "storage", pod.Labels["team"])
	assert.Equal(t, "ds", pod.Labels[LabelInstance], "the selector label stays the operator's")
	for k, v := range sts.Spec.Selector.MatchLabels {
		assert.Equal(t, v, pod.Labels[k], "the StatefulSet still selects its pod")
	}
	assert.Equal(t, "metadata", pod.Annotations["backup.velero.io/backup-volumes"])
	assert.Equal(t, "abc", pod.Annotations[AnnotationConfigHash], "the config hash stays the operator's")

	env := envOf(pod.Spec.Containers[0])
	assert.Equal(t, "Europe/Rome", env["TZ"])
	assert.Equal(t, "secret:tuning/mem", env["GOMEMLIMIT"])
	assert.Equal(t, "/tmp", env["HOME"], "the operator's HOME")
	assert.NotContains(t, env, "DITTOFS_CONTROLPLANE_PORT", "DittoFS configuration is not settable by env")
	names := map[string]int{}
	for _, e := range pod.Spec.Containers[0].Env {
		names[e.Name]++
		assert.Equal(t, 1, names[e.Name], "%s set twice (server-side apply refuses it)", e.Name)
	}

	// Without the fields, nothing is added: the pod template of an existing server is unchanged.
	assert.Equal(t, CommonLabels(server(nil), "server"), plain.Spec.Template.Labels)
	assert.Equal(t, map[string]string{AnnotationConfigHash: "abc"}, plain.Spec.Template.Annotations)
	assert.Nil(t, plain.Spec.Template.Spec.Affinity)
	assert.Nil(t, plain.Spec.Template.Spec.NodeSelector)
	assert.Nil(t, plain.Spec.Template.Spec.Tolerations)
	assert.Empty(t, plain.Spec.Template.Spec.PriorityClassName)
}

func portNames(c corev1.Container) []string {
	var out []string
	for _, p := range c.Ports {
		out = append(out, p.Name)
	}
	return out
}

func keyOf(e corev1.EnvVar) string {
	if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
		return e.ValueFrom.SecretKeyRef.Key
	}
	return ""
}
