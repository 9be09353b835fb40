package specs

import (
	"sort"
	"testing"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

var testImages = PerconaImages{Postgres: "pg:17", PGBackRest: "backrest:2"}

func withBackups(s *v1alpha1.DittoServerSpec) {
	s.Percona = &v1alpha1.PerconaSpec{Enabled: true, Backup: &v1alpha1.PerconaBackupSpec{
		Enabled:              true,
		Bucket:               "backups",
		Endpoint:             "s3.example.com",
		CredentialsSecretRef: &corev1.LocalObjectReference{Name: "pgbackrest-s3"},
		RetentionDays:        ptr.To(int32(14)),
	}}
}

func TestDesiredPerconaCluster(t *testing.T) {
	tests := map[string]struct {
		mutate func(*v1alpha1.DittoServerSpec)
		check  func(t *testing.T, c *pgv2.PerconaPGCluster, applied map[string]any)
	}{
		"defaults": {
			mutate: func(s *v1alpha1.DittoServerSpec) { s.Percona = &v1alpha1.PerconaSpec{Enabled: true} },
			check: func(t *testing.T, c *pgv2.PerconaPGCluster, applied map[string]any) {
				assert.Equal(t, "ds-postgres", c.Name)
				assert.Equal(t, "ns", c.Namespace)
				assert.Equal(t, "2.9.0", c.Spec.CRVersion)
				assert.Equal(t, 17, c.Spec.PostgresVersion)
				assert.Equal(t, "pg:17", c.Spec.Image)
				require.Len(t, c.Spec.InstanceSets, 1)
				is := c.Spec.InstanceSets[0]
				assert.Equal(t, "instance1", is.Name)
				assert.Equal(t, int32(1), *is.Replicas)
				assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, is.DataVolumeClaimSpec.AccessModes)
				assert.Nil(t, is.DataVolumeClaimSpec.StorageClassName, "cluster default")
				assert.True(t, resource.MustParse("10Gi").Equal(is.DataVolumeClaimSpec.Resources.Requests[corev1.ResourceStorage]))
				require.Len(t, c.Spec.Users, 1)
				assert.EqualValues(t, "dittofs", c.Spec.Users[0].Name)
				assert.EqualValues(t, []string{"dittofs"}, toStrings(c.Spec.Users[0].Databases))
				assert.True(t, *c.Spec.AutoCreateUserSchema)
				assert.Equal(t, ptr.To(false), c.Spec.Backups.Enabled, "nil means enabled to Percona")
				assert.Equal(t, "dittofs", c.Labels[LabelPartOf])

				// Only the fields we mean to own are applied: no empty structs, no nulls.
				spec := applied["spec"].(map[string]any)
				assert.Equal(t, []string{"autoCreateUserSchema", "backups", "crVersion", "image", "instances", "postgresVersion", "users"}, keys(spec))
				assert.Equal(t, map[string]any{"enabled": false}, spec["backups"])
				assert.NotContains(t, applied, "status")
				inst := spec["instances"].([]any)[0].(map[string]any)
				assert.Equal(t, []string{"dataVolumeClaimSpec", "name", "replicas"}, keys(inst))
				assert.Equal(t, []string{"accessModes", "resources"}, keys(inst["dataVolumeClaimSpec"].(map[string]any)))
				meta := applied["metadata"].(map[string]any)
				assert.Equal(t, []string{"labels", "name", "namespace"}, keys(meta))
			},
		},
		"replicas, size, class and database name": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				s.Percona = &v1alpha1.PerconaSpec{Enabled: true, Replicas: ptr.To(int32(3)), StorageSize: "50Gi",
					StorageClassName: ptr.To("fast"), DatabaseName: "files"}
			},
			check: func(t *testing.T, c *pgv2.PerconaPGCluster, _ map[string]any) {
				is := c.Spec.InstanceSets[0]
				assert.Equal(t, int32(3), *is.Replicas)
				assert.Equal(t, "fast", *is.DataVolumeClaimSpec.StorageClassName)
				assert.True(t, resource.MustParse("50Gi").Equal(is.DataVolumeClaimSpec.Resources.Requests[corev1.ResourceStorage]))
				assert.EqualValues(t, []string{"files"}, toStrings(c.Spec.Users[0].Databases))
				assert.EqualValues(t, "dittofs", c.Spec.Users[0].Name, "the user name is fixed: the Secret name depends on it")
			},
		},
		"backups on S3": {
			mutate: withBackups,
			check: func(t *testing.T, c *pgv2.PerconaPGCluster, applied map[string]any) {
				b := c.Spec.Backups
				assert.Equal(t, ptr.To(true), b.Enabled)
				assert.Equal(t, "backrest:2", b.PGBackRest.Image)
				require.Len(t, b.PGBackRest.Repos, 1)
				repo := b.PGBackRest.Repos[0]
				assert.Equal(t, "repo1", repo.Name)
				assert.Equal(t, "backups", repo.S3.Bucket)
				assert.Equal(t, "s3.example.com", repo.S3.Endpoint)
				assert.Equal(t, "eu-west-1", repo.S3.Region, "defaulted")
				assert.Equal(t, "0 2 * * *", *repo.BackupSchedules.Full)
				assert.Equal(t, "0 * * * *", *repo.BackupSchedules.Incremental)
				assert.Nil(t, repo.BackupSchedules.Differential)
				assert.Nil(t, repo.Volume)
				assert.Equal(t, map[string]string{
					"repo1-path":                "/pgbackrest/ns/ds-postgres/repo1",
					"repo1-retention-full":      "14",
					"repo1-retention-full-type": "time",
					"repo1-s3-uri-style":        "path",
				}, b.PGBackRest.Global)
				require.Len(t, b.PGBackRest.Configuration, 1)
				assert.Equal(t, "pgbackrest-s3", b.PGBackRest.Configuration[0].Secret.Name)
				backups := applied["spec"].(map[string]any)["backups"].(map[string]any)
				assert.Equal(t, []string{"configuration", "global", "image", "repos"},
					keys(backups["pgbackrest"].(map[string]any)))
			},
		},
		"backups without a credentials Secret project nothing": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				withBackups(s)
				s.Percona.Backup.CredentialsSecretRef = nil
				s.Percona.Backup.RetentionDays = nil
			},
			check: func(t *testing.T, c *pgv2.PerconaPGCluster, _ map[string]any) {
				assert.Empty(t, c.Spec.Backups.PGBackRest.Configuration)
				assert.Equal(t, "7", c.Spec.Backups.PGBackRest.Global["repo1-retention-full"], "defaulted")
			},
		},
		"backup section present but disabled": {
			mutate: func(s *v1alpha1.DittoServerSpec) {
				withBackups(s)
				s.Percona.Backup.Enabled = false
			},
			check: func(t *testing.T, c *pgv2.PerconaPGCluster, applied map[string]any) {
				assert.Equal(t, map[string]any{"enabled": false}, applied["spec"].(map[string]any)["backups"])
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ds := server(tc.mutate)
			before := ds.DeepCopy()
			c := DesiredPerconaCluster(ds, testImages)
			assert.Equal(t, before, ds, "the builder does not touch its input")
			assert.Equal(t, c, DesiredPerconaCluster(ds, testImages), "pure")
			u, err := PerconaApplyObject(c)
			require.NoError(t, err)
			assert.Equal(t, PerconaGVK, u.GroupVersionKind())
			tc.check(t, c, u.Object)
		})
	}
}

func TestPerconaImagesFromEnv(t *testing.T) {
	t.Setenv(EnvRelatedImagePerconaPostgres, "")
	t.Setenv(EnvRelatedImagePerconaPGBackRest, "")
	assert.Equal(t, PerconaImages{DefaultPerconaPostgresImage, DefaultPerconaPGBackRestImage}, PerconaImagesFromEnv())
	t.Setenv(EnvRelatedImagePerconaPostgres, "mirror/pg:17")
	t.Setenv(EnvRelatedImagePerconaPGBackRest, "mirror/backrest:2")
	assert.Equal(t, PerconaImages{"mirror/pg:17", "mirror/backrest:2"}, PerconaImagesFromEnv())
}

func TestKeepCreationFields(t *testing.T) {
	ds := server(withBackups)
	desired := DesiredPerconaCluster(ds, testImages)
	live := DesiredPerconaCluster(ds, testImages)
	live.Spec.CRVersion = "2.10.0"
	live.Spec.PostgresVersion = 18
	live.Spec.Image = "pg:18"
	live.Spec.Backups.PGBackRest.Image = "backrest:3"
	live.Spec.InstanceSets[0].Replicas = ptr.To(int32(4))
	KeepCreationFields(desired, live)
	assert.Equal(t, "2.10.0", desired.Spec.CRVersion, "a Percona upgrade is not reverted")
	assert.Equal(t, 18, desired.Spec.PostgresVersion)
	assert.Equal(t, "pg:18", desired.Spec.Image)
	assert.Equal(t, "backrest:3", desired.Spec.Backups.PGBackRest.Image)
	assert.Equal(t, int32(1), *desired.Spec.InstanceSets[0].Replicas, "replicas stay ours")
}

func TestPerconaNames(t *testing.T) {
	ds := server(nil)
	assert.Equal(t, "ds-postgres", PerconaClusterName(ds))
	assert.Equal(t, "ds-postgres-pguser-dittofs", PerconaUserSecretName(ds))
	ds.Spec.Percona = &v1alpha1.PerconaSpec{Enabled: true}
	assert.Contains(t, ReferencedSecretNames(ds), "ds-postgres-pguser-dittofs", "its creation and rotations reconcile the server")
}

func TestPruneEmpty(t *testing.T) {
	in := map[string]any{
		"a": nil, "b": map[string]any{}, "c": map[string]any{"d": map[string]any{"e": nil}},
		"f": false, "g": int64(0), "h": []any{map[string]any{"i": nil, "j": "x"}}, "k": "",
	}
	assert.Equal(t, map[string]any{"f": false, "g": int64(0), "h": []any{map[string]any{"j": "x"}}, "k": ""}, pruneEmpty(in))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func toStrings[T ~string](in []T) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		out = append(out, string(v))
	}
	return out
}
