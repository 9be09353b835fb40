package percona

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// The StatefulSet waits for the cluster (state ready) and its user Secret, and status says why
// meanwhile; then the server runs on PostgreSQL with the init container; a password rotation
// rolls the pod; a cluster that stops being ready leaves the running StatefulSet alone.
func TestPerconaGatingAndRollout(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t, k8s)
	ds := perconaServer(ns, "gated", nil)
	// Percona wins over a postgresSecretRef, with a warning.
	ds.Spec.Database = &v1alpha1.DatabaseSpec{PostgresSecretRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "external-db"}, Key: "uri"}}
	require.NoError(t, k8s.Create(ctx(), ds))
	getCluster(t, k8s, ns, "gated")

	noStatefulSet := func(why string) {
		t.Helper()
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gated"}, &appsv1.StatefulSet{})
		assert.True(t, apierrors.IsNotFound(err), "no StatefulSet while %s: %v", why, err)
	}

	// Created, no state yet.
	got := waitCondition(t, k8s, ns, "gated", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady,
		"gated-postgres is not reporting a state yet", "StatefulSet is created once it is ready", "postgresSecretRef is ignored")
	db := condition(got, specs.ConditionDatabaseReady)
	require.NotNil(t, db)
	assert.Equal(t, metav1.ConditionFalse, db.Status)
	assert.Equal(t, specs.ReasonPerconaNotReady, db.Reason)
	assert.Equal(t, v1alpha1.PhasePending, got.Status.Phase)
	assert.Equal(t, "gated-postgres", got.Status.PerconaClusterName)
	assert.Equal(t, metav1.ConditionTrue, condition(got, specs.ConditionConfigReady).Status, "the rest of the status is written")
	assert.Equal(t, "gated-file."+ns+".svc:12049", got.Status.NFSEndpoint)
	assert.NotEmpty(t, got.Status.APIEndpoint)
	noStatefulSet("the cluster has no state")
	waitEvent(t, k8s, ns, "gated", specs.EventPerconaCreated, "gated-postgres")
	waitEvent(t, k8s, ns, "gated", specs.EventPerconaNotReady, "not reporting a state yet")
	waitEvent(t, k8s, ns, "gated", specs.EventPostgresSecretIgnored, "postgresSecretRef is ignored")

	// Initializing: the state is in the message.
	setPerconaState(t, ns, "gated", "initializing")
	waitCondition(t, k8s, ns, "gated", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady, `in state "initializing"`)
	noStatefulSet("the cluster initializes")

	// Ready, but Percona has not written the user Secret yet.
	setPerconaState(t, ns, "gated", "ready")
	waitCondition(t, k8s, ns, "gated", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaSecretMissing, "gated-postgres-pguser-dittofs")
	noStatefulSet("the user Secret is missing")

	// The Secret appears: the server starts on PostgreSQL.
	perconaUserSecret(t, ns, "gated", "first-password")
	sts := getStatefulSet(t, ns, "gated")
	pod := sts.Spec.Template.Spec
	env := map[string]string{}
	for _, e := range pod.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			env[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		} else {
			env[e.Name] = e.Value
		}
	}
	secret := "gated-postgres-pguser-dittofs"
	assert.Equal(t, secret+"/host", env[specs.EnvPostgresHost])
	assert.Equal(t, secret+"/port", env[specs.EnvPostgresPort])
	assert.Equal(t, secret+"/dbname", env[specs.EnvPostgresDatabase])
	assert.Equal(t, secret+"/user", env[specs.EnvPostgresUser])
	assert.Equal(t, secret+"/password", env[specs.EnvPostgresPassword])
	assert.Equal(t, "verify-full", env[specs.EnvPostgresSSLMode], "the cluster's certificate checked against its CA")
	assert.Equal(t, "/var/run/dittofs/postgres-ca/ca.crt", env[specs.EnvPostgresSSLRootCert])
	require.Len(t, pod.InitContainers, 1)
	assert.Equal(t, specs.InitContainerWaitForPostgres, pod.InitContainers[0].Name)
	assert.Equal(t, []string{"/bin/sh", "-c", specs.PostgresWaitScript()}, pod.InitContainers[0].Command)
	cm := &corev1.ConfigMap{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "gated-config"}, cm))
	assert.Contains(t, cm.Data["config.yaml"], "type: postgres")

	markStatefulSetReady(t, ns, "gated")
	got = waitCondition(t, k8s, ns, "gated", specs.ConditionReady, metav1.ConditionTrue, "")
	assert.Equal(t, v1alpha1.PhaseRunning, got.Status.Phase)
	db = condition(got, specs.ConditionDatabaseReady)
	assert.Equal(t, specs.ReasonPerconaReady, db.Reason)
	assert.Contains(t, db.Message, "sslmode=verify-full")
	waitEvent(t, k8s, ns, "gated", specs.EventDatabaseReady, "gated-postgres is ready")
	hash := sts.Spec.Template.Annotations[specs.AnnotationConfigHash]
	require.NotEmpty(t, hash)
	assert.Equal(t, hash, got.Status.ConfigHash)

	// Password rotation: the Secret's bytes are in the hash, the pod rolls.
	pg := getCluster(t, k8s, ns, "gated")
	perconaUserSecret(t, ns, "gated", "rotated-password")
	eventually(t, "new config hash", func() error {
		cur := getStatefulSet(t, ns, "gated")
		if cur.Spec.Template.Annotations[specs.AnnotationConfigHash] == hash {
			return assert.AnError
		}
		return nil
	})
	assert.Equal(t, pg.ResourceVersion, getCluster(t, k8s, ns, "gated").ResourceVersion, "the cluster is not rewritten")
	hash = getStatefulSet(t, ns, "gated").Spec.Template.Annotations[specs.AnnotationConfigHash]

	// A new CA of the cluster (DittoFS reads it at boot): the pod rolls.
	perconaClusterCert(t, ns, "gated", "a renewed CA")
	eventually(t, "new config hash after a CA change", func() error {
		if getStatefulSet(t, ns, "gated").Spec.Template.Annotations[specs.AnnotationConfigHash] == hash {
			return assert.AnError
		}
		return nil
	})
	hash = getStatefulSet(t, ns, "gated").Spec.Template.Annotations[specs.AnnotationConfigHash]

	// The cluster stops being ready (a Percona restart): the StatefulSet is left as it is.
	markStatefulSetReady(t, ns, "gated")
	setPerconaState(t, ns, "gated", "initializing")
	got = waitCondition(t, k8s, ns, "gated", specs.ConditionDatabaseReady, metav1.ConditionFalse, specs.ReasonPerconaNotReady,
		"existing StatefulSet is left as it is")
	assert.Equal(t, specs.ReasonPerconaNotReady, condition(got, specs.ConditionReady).Reason)
	waitEvent(t, k8s, ns, "gated", specs.EventPerconaNotReady, `in state "initializing"`)
	sts = getStatefulSet(t, ns, "gated")
	assert.Equal(t, int32(1), *sts.Spec.Replicas, "never scaled down automatically")
	assert.Equal(t, hash, sts.Spec.Template.Annotations[specs.AnnotationConfigHash])

	setPerconaState(t, ns, "gated", "ready")
	waitCondition(t, k8s, ns, "gated", specs.ConditionReady, metav1.ConditionTrue, "")
}
