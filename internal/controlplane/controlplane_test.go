package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

func TestNormalizeEndpoint(t *testing.T) {
	cases := []struct {
		in, out string
		reach   endpointReach
	}{
		{"s3.eu-west-1.amazonaws.com", "https://s3.eu-west-1.amazonaws.com", reachPublic},
		{"https://s3.example.com:9000", "https://s3.example.com:9000", reachPublic},
		{"minio.storage.svc:9000", "http://minio.storage.svc:9000", reachPrivate},
		{"minio.storage.svc.cluster.local", "http://minio.storage.svc.cluster.local", reachPrivate},
		{"https://minio.storage.svc.cluster.local", "https://minio.storage.svc.cluster.local", reachPrivate},
		{"minio:9000", "http://minio:9000", reachPrivate},
		{"10.1.2.3:9000", "http://10.1.2.3:9000", reachPrivate},
		{"http://[fd00::1]:9000", "http://[fd00::1]:9000", reachPrivate},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", reachLocal},
		{"localhost:9000", "http://localhost:9000", reachLocal},
		{"http://0.0.0.0", "http://0.0.0.0", reachLocal},
		{"169.254.169.254", "http://169.254.169.254", reachLinkLocal},
		{"http://[fe80::1]", "http://[fe80::1]", reachLinkLocal},
		{"8.8.8.8", "https://8.8.8.8", reachPublic},
	}
	for _, c := range cases {
		out, reach := normalizeEndpoint(c.in, DefaultClusterDomain)
		assert.Equal(t, c.out, out, c.in)
		assert.Equal(t, c.reach, reach, c.in)
	}
	_, reach := normalizeEndpoint("minio.storage.svc.corp.example", "corp.example")
	assert.Equal(t, reachPrivate, reach, "custom cluster domain")
}

// TestEndpointPolicy: DittoFS's guard against request forgery is turned off only for a private
// endpoint the spec allows; loopback and link-local are refused whatever it says, and the
// refusal names the host, the Secret and the fix, never the URL's credentials.
func TestEndpointPolicy(t *testing.T) {
	cases := []struct {
		name     string
		endpoint string
		allow    bool
		loopback bool // the LoopbackS3 option (tests on one host)
		refused  string
		private  bool
	}{
		{name: "public", endpoint: "https://s3.amazonaws.com"},
		{name: "public, allow set", endpoint: "https://s3.amazonaws.com", allow: true},
		{name: "cluster MinIO without the field", endpoint: "minio.storage.svc:9000", refused: "set spec.s3.allowPrivateEndpoint: true"},
		{name: "cluster MinIO allowed", endpoint: "minio.storage.svc:9000", allow: true, private: true},
		{name: "metadata service", endpoint: "http://169.254.169.254", allow: true, refused: "link-local"},
		{name: "loopback", endpoint: "http://user:hunter2@127.0.0.1:9000", allow: true, refused: "loopback"},
		{name: "loopback on one host, allowed", endpoint: "http://127.0.0.1:9000", allow: true, loopback: true, private: true},
		{name: "loopback on one host, not allowed", endpoint: "http://127.0.0.1:9000", loopback: true, refused: "allowPrivateEndpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &run{
				ds:   &v1alpha1.DittoServer{Spec: v1alpha1.DittoServerSpec{S3: &v1alpha1.S3Spec{AllowPrivateEndpoint: c.allow}}},
				Step: &Step{opts: Options{LoopbackS3: c.loopback}},
			}
			ep, reach := normalizeEndpoint(c.endpoint, DefaultClusterDomain)
			p := r.endpointProblem(ep, reach, "s3-creds", "endpoint")
			if c.refused == "" {
				assert.Nil(t, p)
				assert.Equal(t, c.private, reach != reachPublic, "allow_private_endpoint")
				return
			}
			require.NotNil(t, p)
			assert.Equal(t, specs.ReasonS3EndpointRefused, p.Reason)
			assert.Contains(t, p.Message, c.refused)
			assert.Contains(t, p.Message, `Secret s3-creds key "endpoint"`)
			assert.NotContains(t, p.Message, "hunter2")
		})
	}
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
	assert.Equal(t, []v1alpha1.ShareSpec{{Name: specs.DefaultShareName}}, desiredShares(ds),
		"spec.shares unset: the default share, its permission as created")
	ds.Spec.Shares = []v1alpha1.ShareSpec{}
	assert.Empty(t, desiredShares(ds), "an empty list declares no share")
	ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: "/a"}, {Name: "/b", ReadOnly: true, DefaultPermission: "read-write"}}
	assert.Equal(t, []v1alpha1.ShareSpec{
		{Name: "/a"},
		{Name: "/b", ReadOnly: true, DefaultPermission: "read-write"},
	}, desiredShares(ds))
	assert.Equal(t, "read", specs.DefaultSharePermission, "writing needs a grant or a stated permission")
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

// TestPolicyMatches: the server formats durations its own way (24h0m0s) and turns @daily into
// 24h; a policy is only put when something the spec says differs.
func TestPolicyMatches(t *testing.T) {
	spec := v1alpha1.SnapshotPolicySpec{Share: "/data", Interval: "@daily", KeepLast: 7, TTL: "720h"}
	server := dittoapi.SnapshotPolicy{Share: "/data", Enabled: true, Interval: "24h0m0s", KeepLast: 7, TTL: "720h0m0s"}
	assert.True(t, policyMatches(server, spec))
	for name, mutate := range map[string]func(*dittoapi.SnapshotPolicy){
		"interval": func(p *dittoapi.SnapshotPolicy) { p.Interval = "1h0m0s" },
		"keepLast": func(p *dittoapi.SnapshotPolicy) { p.KeepLast = 0 },
		"ttl":      func(p *dittoapi.SnapshotPolicy) { p.TTL = "" },
		"enabled":  func(p *dittoapi.SnapshotPolicy) { p.Enabled = false },
		"garbage":  func(p *dittoapi.SnapshotPolicy) { p.Interval = "soon" },
	} {
		p := server
		mutate(&p)
		assert.False(t, policyMatches(p, spec), name)
	}
	disabled := spec
	disabled.Enabled = ptr.To(false)
	off := server
	off.Enabled = false
	assert.True(t, policyMatches(off, disabled))
	noTTL := spec
	noTTL.TTL = ""
	none := server
	none.TTL = ""
	assert.True(t, policyMatches(none, noTTL), "no age bound on both sides")
}

// podReader serves one pod (or none) to Step.endpoint.
type podReader struct {
	client.Reader
	pod *corev1.Pod
}

func (r podReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if r.pod == nil || key.Name != r.pod.Name || key.Namespace != r.pod.Namespace {
		return apierrors.NewNotFound(corev1.Resource("pods"), key.Name)
	}
	r.pod.DeepCopyInto(obj.(*corev1.Pod))
	return nil
}

// TestEndpoint: the Service's DNS name by default; with pod-ip, the IP in the status of pod
// <name>-0, or "" (reported as unreachable) while it has none.
func TestEndpoint(t *testing.T) {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: "team"}}
	ds.Spec.ControlPlane = &v1alpha1.ControlPlaneSpec{Port: 8081}
	pod := func(ip string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "files-0", Namespace: "team"}, Status: corev1.PodStatus{PodIP: ip}}
	}
	cases := map[string]struct {
		address string
		pod     *corev1.Pod
		want    string
	}{
		"default: the Service":         {"", pod("10.0.0.7"), "https://files-api.team.svc.cluster.local:8081"},
		"service":                      {APIAddressService, nil, "https://files-api.team.svc.cluster.local:8081"},
		"pod-ip":                       {APIAddressPodIP, pod("10.0.0.7"), "https://10.0.0.7:8081"},
		"pod-ip, IPv6":                 {APIAddressPodIP, pod("fd00::7"), "https://[fd00::7]:8081"},
		"pod-ip, no IP yet":            {APIAddressPodIP, pod(""), ""},
		"pod-ip, no pod (scaled to 0)": {APIAddressPodIP, nil, ""},
		"TLS disabled: plain HTTP":     {APIAddressPodIP, pod("10.0.0.7"), "http://10.0.0.7:8081"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := New(Options{APIAddress: tc.address}, Deps{Pods: podReader{pod: tc.pod}})
			ds := ds.DeepCopy()
			if strings.HasPrefix(name, "TLS disabled") {
				ds.Spec.ControlPlane.TLS = &v1alpha1.APITLSSpec{Mode: v1alpha1.APITLSDisabled}
			}
			got, err := s.endpoint(context.Background(), ds)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
