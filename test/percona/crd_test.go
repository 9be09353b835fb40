package percona

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// Without the Percona operator a Percona server reports DatabaseReady=False PerconaCRDMissing
// with the install hint, without an error loop; when the CRD is installed later, the running
// operator notices it (no restart) and provisions the cluster.
func TestPerconaCRDMissingThenInstalled(t *testing.T) {
	// Its own API server: the package's one has the CRD installed.
	bare, err := testenv.Start()
	require.NoError(t, err)
	defer bare.Stop()
	c := bare.Client
	mgr := bare.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t, c)

	t0 := time.Now()
	require.NoError(t, c.Create(ctx(), perconaServer(ns, "early", nil)))
	defer func() { t.Logf("from create: %s", time.Since(t0).Round(time.Millisecond)) }()
	got := waitCondition(t, c, ns, "early", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonPerconaCRDMissing,
		"Percona PostgreSQL operator is not installed", "docs/PERCONA.md")
	db := condition(got, specs.ConditionDatabaseReady)
	require.NotNil(t, db)
	assert.Equal(t, specs.ReasonPerconaCRDMissing, db.Reason)
	assert.Equal(t, metav1.ConditionFalse, db.Status)
	assert.Equal(t, v1alpha1.PhasePending, got.Status.Phase, "waiting for an install, not a broken spec")
	assert.Equal(t, metav1.ConditionTrue, condition(got, specs.ConditionConfigReady).Status)
	err = c.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "early"}, &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "no StatefulSet without a database")
	waitEvent(t, c, ns, "early", specs.EventPerconaCRDMissing, "docs/PERCONA.md")
	t.Logf("condition after %s", time.Since(t0).Round(time.Millisecond))

	// No error loop and no polling: nothing happens until something changes.
	time.Sleep(time.Second)
	before := reconcileCount(t)
	time.Sleep(3 * time.Second)
	assert.Zero(t, reconcileCount(t)-before, "reconciles while the CRD is missing")

	// The Percona operator is installed: the CRD watch brings the server back.
	start := time.Now()
	_, err = envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: []string{crdDir}})
	require.NoError(t, err)
	t.Logf("CRD installed in %s", time.Since(start).Round(time.Millisecond))
	pg := getCluster(t, c, ns, "early")
	t.Logf("cluster created %s after the CRD install began", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, got.UID, metav1.GetControllerOf(pg).UID)
	waitCondition(t, c, ns, "early", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady)
}
