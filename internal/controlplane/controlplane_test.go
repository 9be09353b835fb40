package hybrid

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

func TestNormalizeEndpoint(t *testing.T) {
	cases := []struct {
		in, out string
		private bool
	}{
		{"s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com", false},
		{"https://s3.example.com:9000", "https://s3.example.com:9000", false},
		{"minio.storage.svc:9000", "http://minio.storage.svc:9000", true},
		{"minio.storage.svc.cluster.local", "http://minio.storage.svc.cluster.local", true},
		{"https://minio.storage.svc.cluster.local", "https://minio.storage.svc.cluster.local", true},
		{"minio:9000", "http://minio:9000", true},
		{"10.1.2.3:9000", "http://10.1.2.3:9000", true},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", true},
		{"8.8.8.8", "https://8.8.8.8", false},
	}
	for _, c := range cases {
		out, private := normalizeEndpoint(c.in, DefaultClusterDomain)
		assert.Equal(t, c.out, out, c.in)
		assert.Equal(t, c.private, private, c.in)
	}
	_, private := normalizeEndpoint("minio.storage.svc.corp.example", "corp.example")
	assert.True(t, private, "custom cluster domain")
}

func TestS3Matches(t *testing.T) {
	want := map[string]any{"bucket": "b", "region": "r", "access_key_id": "a", "secret_access_key": "s"}
	assert.True(t, s3Matches(map[string]any{"bucket": "b", "region": "r", "access_key_id": "a", "secret_access_key": "********"}, want))
	assert.False(t, s3Matches(map[string]any{"bucket": "x", "region": "r", "access_key_id": "a"}, want))
	assert.False(t, s3Matches(map[string]any{"bucket": "b", "region": "r", "access_key_id": "a", "endpoint": "http://e"}, want), "endpoint removed")
	assert.False(t, s3Matches(map[string]any{"bucket": "b", "region": "r", "access_key_id": "a", "allow_private_endpoint": true}, want))
	assert.NotEqual(t, configHash(want), configHash(map[string]any{"bucket": "b", "region": "r", "access_key_id": "a", "secret_access_key": "s2"}))
}

func readyServer() (*v1alpha1.DittoServer, *appsv1.StatefulSet) {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "ns", Generation: 1}}
	ds.Status.Conditions = []metav1.Condition{{Type: ConditionDeployed, Status: metav1.ConditionTrue, Reason: "x"}}
	sts := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(1))}}
	sts.Status = appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
	return ds, sts
}

func TestControlPlaneJoinsReady(t *testing.T) {
	build := func(cp cpOutcome, s3 bool) v1alpha1.DittoServerStatus {
		ds, sts := readyServer()
		if s3 {
			ds.Spec.S3 = &v1alpha1.S3Spec{Bucket: "b"}
		}
		b := newStatusBuilder(ds)
		b.configReady("h")
		b.observeStatefulSet(sts)
		b.cp = cp
		return b.build()
	}
	ready := func(st v1alpha1.DittoServerStatus) *metav1.Condition {
		return meta.FindStatusCondition(st.Conditions, ConditionReady)
	}

	st := build(cpOutcome{}, false)
	assert.Equal(t, metav1.ConditionTrue, ready(st).Status, "control plane off: as before")
	assert.Nil(t, meta.FindStatusCondition(st.Conditions, ConditionControlPlaneReady))

	st = build(cpOutcome{attempted: true, ready: true, reason: ReasonControlPlaneApplied, message: "ok"}, false)
	assert.Equal(t, metav1.ConditionTrue, ready(st).Status)
	assert.True(t, meta.IsStatusConditionTrue(st.Conditions, ConditionControlPlaneReady))

	st = build(cpOutcome{attempted: true, reason: ReasonAdminCredentialUnauthorized, message: "refused"}, false)
	assert.Equal(t, metav1.ConditionFalse, ready(st).Status)
	assert.Equal(t, ReasonAdminCredentialUnauthorized, ready(st).Reason)

	st = build(cpOutcome{attempted: true, unknown: true, reason: ReasonAPIUnreachable, message: "no answer"}, false)
	assert.Equal(t, metav1.ConditionTrue, ready(st).Status, "an unreachable API does not hold Ready back")
	assert.Contains(t, ready(st).Message, "no answer")
	assert.Equal(t, metav1.ConditionUnknown, meta.FindStatusCondition(st.Conditions, ConditionControlPlaneReady).Status)

	st = build(cpOutcome{attempted: true, ready: true, reason: ReasonControlPlaneApplied, storageNeeded: true,
		storageReason: ReasonStoreUnhealthy, storageMsg: "S3 connectivity check failed"}, true)
	assert.Equal(t, metav1.ConditionFalse, ready(st).Status)
	assert.Equal(t, ReasonStoreUnhealthy, ready(st).Reason)
	assert.Equal(t, "S3 connectivity check failed", ready(st).Message)
}

func TestUnreachableBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{
		1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 50: 5 * time.Minute,
	} {
		assert.Equal(t, want, unreachableBackoff(n), "failure %d in a row", n)
	}
}
