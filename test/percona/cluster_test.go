package percona

import (
	"testing"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// The clusters the operator generates, with and without backups, pass the real CRD schema of
// Percona v2.9.0 (CEL rules included), and are owned by their server.
func TestPerconaClusterPassesTheRealSchema(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t, k8s)

	plain := perconaServer(ns, "plain", nil)
	backed := perconaServer(ns, "backed", func(p *v1alpha1.PerconaSpec) {
		p.Replicas = ptr.To(int32(2))
		p.StorageSize = "20Gi"
		p.DatabaseName = "files"
		p.Backup = &v1alpha1.PerconaBackupSpec{Enabled: true, Bucket: "pg-backups", Endpoint: "minio.storage.svc:9000",
			CredentialsSecretRef: &corev1.LocalObjectReference{Name: "pgbackrest-s3"}}
	})
	require.NoError(t, k8s.Create(ctx(), plain))
	require.NoError(t, k8s.Create(ctx(), backed))

	pg := getCluster(t, k8s, ns, "plain")
	ds := getServer(t, k8s, ns, "plain")
	require.NotNil(t, metav1.GetControllerOf(pg))
	assert.Equal(t, ds.UID, metav1.GetControllerOf(pg).UID)
	assert.Equal(t, ptr.To(false), pg.Spec.Backups.Enabled)
	assert.Equal(t, specs.PerconaCRVersion, pg.Spec.CRVersion)
	assert.Equal(t, specs.PerconaPostgresVersion, pg.Spec.PostgresVersion)
	waitCondition(t, k8s, ns, "plain", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady)

	pg = getCluster(t, k8s, ns, "backed")
	assert.Equal(t, ptr.To(true), pg.Spec.Backups.Enabled)
	require.Len(t, pg.Spec.Backups.PGBackRest.Repos, 1)
	assert.Equal(t, "pg-backups", pg.Spec.Backups.PGBackRest.Repos[0].S3.Bucket)
	assert.Equal(t, "7", pg.Spec.Backups.PGBackRest.Global["repo1-retention-full"])
	assert.Equal(t, "pgbackrest-s3", pg.Spec.Backups.PGBackRest.Configuration[0].Secret.Name)
	assert.Equal(t, int32(2), *pg.Spec.InstanceSets[0].Replicas)
	assert.EqualValues(t, "files", pg.Spec.Users[0].Databases[0])
	waitCondition(t, k8s, ns, "backed", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady)
	waitEvent(t, k8s, ns, "backed", specs.EventPerconaCreated, "backed-postgres")

	// The schema is live: what Percona rejects (backups on without a repository) is rejected.
	bad := &pgv2.PerconaPGCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns},
		Spec: pgv2.PerconaPGClusterSpec{PostgresVersion: 17, InstanceSets: pg.Spec.InstanceSets,
			Backups: pgv2.Backups{Enabled: ptr.To(true)}},
	}
	err := k8s.Create(ctx(), bad)
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err), "%v", err)
	assert.Contains(t, err.Error(), "At least one repository must be configured")
}

// After creation only the fields the operator owns are applied (server-side apply): a user's
// edits of other fields survive an update of ours, a Percona upgrade (crVersion) is not
// reverted, and an unchanged spec costs no write.
func TestPerconaUserEditsSurvive(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t, k8s)
	require.NoError(t, k8s.Create(ctx(), perconaServer(ns, "edited", nil)))
	pg := getCluster(t, k8s, ns, "edited")

	// The user edits the cluster as kubectl edit would (an update by another field manager).
	patch := []byte(`[{"op":"add","path":"/metadata/annotations/team","value":"db"},` +
		`{"op":"replace","path":"/spec/crVersion","value":"2.10.0"},` +
		`{"op":"add","path":"/spec/pause","value":false},` +
		`{"op":"add","path":"/spec/instances/0/resources","value":{"limits":{"memory":"2Gi"}}}]`)
	require.NoError(t, k8s.Patch(ctx(), pg, client.RawPatch(types.JSONPatchType, patch), client.FieldOwner("kubectl-edit")))

	// Our desired content changes: replicas 1 -> 2.
	updateServer(t, ns, "edited", func(ds *v1alpha1.DittoServer) { ds.Spec.Percona.Replicas = ptr.To(int32(2)) })
	eventually(t, "replicas 2 applied", func() error {
		pg = &pgv2.PerconaPGCluster{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "edited-postgres"}, pg); err != nil {
			return err
		}
		if r := pg.Spec.InstanceSets[0].Replicas; r == nil || *r != 2 {
			return assert.AnError
		}
		return nil
	})
	assert.Equal(t, "db", pg.Annotations["team"], "user annotation kept")
	assert.Equal(t, "2.10.0", pg.Spec.CRVersion, "a Percona upgrade is not reverted")
	assert.Equal(t, ptr.To(false), pg.Spec.Pause, "user field kept")
	assert.Equal(t, "2Gi", pg.Spec.InstanceSets[0].Resources.Limits.Memory().String(), "user field in our list item kept")
	assert.NotNil(t, pg.Spec.InstanceSets[0].DataVolumeClaimSpec.Resources.Requests.Storage())

	// Nothing changes: reconciles do not write the cluster.
	rv := pg.ResourceVersion
	ds := updateServer(t, ns, "edited", func(ds *v1alpha1.DittoServer) {
		ds.Spec.Service = &v1alpha1.ServiceSpec{Annotations: map[string]string{"poke": "1"}} // a full reconcile
	})
	waitObserved(t, ns, "edited", ds.Generation)
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(pg), pg))
	assert.Equal(t, rv, pg.ResourceVersion, "no write for an unchanged desired cluster")

	// A field the operator sets is edited: it is put back.
	drift := []byte(`[{"op":"replace","path":"/spec/instances/0/replicas","value":5}]`)
	require.NoError(t, k8s.Patch(ctx(), pg, client.RawPatch(types.JSONPatchType, drift), client.FieldOwner("kubectl-edit")))
	eventually(t, "replicas restored to the spec's 2", func() error {
		pg = &pgv2.PerconaPGCluster{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "edited-postgres"}, pg); err != nil {
			return err
		}
		if r := pg.Spec.InstanceSets[0].Replicas; r == nil || *r != 2 {
			return assert.AnError
		}
		return nil
	})
	assert.Equal(t, "2Gi", pg.Spec.InstanceSets[0].Resources.Limits.Memory().String(), "the user's field stays")
	testenv.WaitEvent(t, k8s, ns, "edited", specs.EventDriftReverted)
}

// TestBackupCredentialsWithoutKeyAreRefused: without the webhook, a backup Secret that holds no
// pgBackRest S3 key gets the webhook's answer as a condition, and no cluster is created.
func TestBackupCredentialsWithoutKeyAreRefused(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t, k8s)
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pgbackrest", Namespace: ns},
		StringData: map[string]string{"s3.conf": "[global]\nrepo1-s3-uri-style=path\n"}}))
	require.NoError(t, k8s.Create(ctx(), perconaServer(ns, "nokey", func(p *v1alpha1.PerconaSpec) {
		p.Backup = &v1alpha1.PerconaBackupSpec{Enabled: true, Bucket: "b", Endpoint: "s3.example.com",
			CredentialsSecretRef: &corev1.LocalObjectReference{Name: "pgbackrest"}}
	})))
	waitCondition(t, k8s, ns, "nokey", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonInvalidSpec,
		"spec.percona.backup.credentialsSecretRef: Secret pgbackrest has no pgBackRest S3 key")
	err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "nokey-postgres"}, &pgv2.PerconaPGCluster{})
	assert.True(t, apierrors.IsNotFound(err), "no cluster for a spec that is refused: %v", err)
}
