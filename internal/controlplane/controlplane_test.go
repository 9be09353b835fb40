package controlplane

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
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
}

func TestUnreachableBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{
		1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 50: 5 * time.Minute,
	} {
		assert.Equal(t, want, unreachableBackoff(n), "failure %d in a row", n)
	}
}

func TestDesiredShares(t *testing.T) {
	ds := &v1alpha1.DittoServer{}
	assert.Equal(t, []v1alpha1.ShareSpec{{Name: specs.DefaultShareName, DefaultPermission: specs.DefaultSharePermission}}, desiredShares(ds),
		"spec.shares unset: the default share")
	ds.Spec.Shares = []v1alpha1.ShareSpec{}
	assert.Empty(t, desiredShares(ds), "an empty list declares no share")
	ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: "/a"}, {Name: "/b", ReadOnly: true, DefaultPermission: "read"}}
	assert.Equal(t, []v1alpha1.ShareSpec{
		{Name: "/a", DefaultPermission: specs.DefaultSharePermission},
		{Name: "/b", ReadOnly: true, DefaultPermission: "read"},
	}, desiredShares(ds))
}

func TestSplitJoinNames(t *testing.T) {
	m := splitNames(" /b, /a,,")
	assert.Equal(t, map[string]bool{"/a": true, "/b": true}, m)
	assert.Equal(t, "/a,/b", joinNames(m), "sorted, so the annotation is stable")
	assert.Empty(t, joinNames(splitNames("")))
}

func TestStorageCondition(t *testing.T) {
	c := storageCondition(true, specs.ReasonStoreHealthy, "ok")
	assert.Equal(t, metav1.Condition{Type: specs.ConditionStorageReady, Status: metav1.ConditionTrue, Reason: specs.ReasonStoreHealthy, Message: "ok"}, *c)
	assert.Equal(t, metav1.ConditionFalse, storageCondition(false, specs.ReasonStoreUnhealthy, "x").Status)
}
