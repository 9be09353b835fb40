package controlplane

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/controlplane"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

func waitCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string, contains ...string) *v1alpha1.DittoServer {
	t.Helper()
	return testenv.WaitCondition(t, k8s, ns, name, typ, status, reason, contains...)
}

// quiesce waits until the operator made at least one call to url and then none for a second;
// it returns the calls made.
func quiesce(t *testing.T, url string) (total, writes int, detail string) {
	t.Helper()
	testenv.Eventually(t, "a reconcile calling the API", func() error {
		if n, _, _ := calls.count(url); n == 0 {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	last := -1
	for {
		n, _, _ := calls.count(url)
		if n == last {
			return calls.count(url)
		}
		last = n
		time.Sleep(time.Second)
	}
}

func configHashOf(t *testing.T, ns string) string {
	return testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationConfigHash]
}

// markReady plays the StatefulSet controller after a rollout until the server is Ready.
func markReady(t *testing.T, ns, name string) {
	t.Helper()
	testenv.Eventually(t, name+" Ready after the rollout", func() error {
		testenv.MarkStatefulSetReady(t, k8s, ns, name)
		ds := testenv.GetServer(t, k8s, ns, name)
		if c := testenv.Condition(ds, specs.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready: %v", c)
		}
		return nil
	})
}

// TestProvisioning: a DittoServer with spec.s3 and SMB enabled becomes Ready on the real
// server; then steady state, dfs restart, adapter port drift, S3 credential rotation and a
// wrong bucket.
func TestProvisioning(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files")
	s3 := fakeS3(t, "ditto-bucket")
	require.NoError(t, k8s.Create(ctx(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		StringData: map[string]string{"accessKeyId": "AKIA1", "secretAccessKey": "secret-1", "endpoint": s3.Endpoint},
	}))
	start := time.Now()
	server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) {
		s.SMB = &v1alpha1.SMBSpec{Enabled: true, MaxConnections: ptr.To(int32(77))}
		// gofakes3 listens on 127.0.0.1: a private endpoint to DittoFS, allowed on purpose.
		s.S3 = &v1alpha1.S3Spec{Bucket: "ditto-bucket", Region: "us-east-1", AllowPrivateEndpoint: true,
			CredentialsSecretRef: &v1alpha1.S3CredentialsSecretRef{SecretName: "s3"}}
	})
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
	waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionTrue, specs.ReasonStoreHealthy)
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	t.Logf("Ready with control plane applied %s after create", time.Since(start).Round(time.Millisecond))
	for _, endpoint := range []string{"auth", "adapters", "store", "shares"} {
		assert.Positive(t, apiCalls(t, endpoint, "2xx"), "dittofs_api_request_duration_seconds has the %s calls", endpoint)
	}

	admin := be.dfs.Admin(t)
	sh, err := admin.GetShare(ctx(), specs.DefaultShareName)
	require.NoError(t, err)
	require.NotNil(t, sh.RemoteBlockStoreID)
	assert.Equal(t, "read", sh.DefaultPermission, "users without a grant may read, not write, unless the spec says so")
	store, err := admin.GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
	require.NoError(t, err)
	cfg := store.ConfigMap()
	assert.Equal(t, "http://"+s3.Endpoint, cfg["endpoint"], "scheme added")
	assert.Equal(t, true, cfg["allow_private_endpoint"])
	assert.Equal(t, "AKIA1", cfg["access_key_id"])
	assert.Equal(t, *sh.RemoteBlockStoreID, store.ID)
	ads, err := admin.ListAdapters(ctx())
	require.NoError(t, err)
	for _, a := range ads {
		assert.True(t, a.Enabled, a.Type)
		assert.Equal(t, map[string]int{"nfs": be.nfsPort, "smb": be.smbPt}[a.Type], a.Port, a.Type)
	}
	set, err := admin.GetAdapterSettings(ctx(), "smb")
	require.NoError(t, err)
	assert.EqualValues(t, 77, set["max_connections"])
	u, err := admin.GetUser(ctx(), specs.OperatorUsername)
	require.NoError(t, err)
	assert.Equal(t, "admin", u.Role)
	assert.False(t, u.MustChangePassword)
	opSecret := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-operator-credentials"}, opSecret))
	assert.NotEmpty(t, opSecret.Data["password"])
	testenv.WaitEvent(t, k8s, ns, "files", specs.EventOperatorAccountProvisioned)

	t.Run("steady state is read-only and bounded", func(t *testing.T) {
		calls.reset(be.dfs.URL)
		poke(t, ns, "s3")
		total, writes, detail := quiesce(t, be.dfs.URL)
		t.Logf("API calls of one steady-state reconcile: %d (%s)", total, detail)
		assert.Zero(t, writes, detail)
		assert.LessOrEqual(t, total, 6, detail)
	})

	t.Run("dfs restart: state persists, the operator writes nothing", func(t *testing.T) {
		be.dfs.Restart(t)
		calls.reset(be.dfs.URL)
		poke(t, ns, "s3")
		total, writes, detail := quiesce(t, be.dfs.URL)
		t.Logf("after restart: %d calls (%s)", total, detail)
		assert.Zero(t, writes, detail)
		waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	})

	t.Run("an existing share keeps its permission while the spec states none", func(t *testing.T) {
		// A server from before read became the default: its /export is read-write.
		rw := "read-write"
		_, err := admin.UpdateShare(ctx(), specs.DefaultShareName, dittoapi.UpdateShareRequest{DefaultPermission: &rw})
		require.NoError(t, err)
		calls.reset(be.dfs.URL)
		poke(t, ns, "s3")
		_, writes, detail := quiesce(t, be.dfs.URL)
		assert.Zero(t, writes, "nothing put back: %s", detail)
		sh, err := admin.GetShare(ctx(), specs.DefaultShareName)
		require.NoError(t, err)
		assert.Equal(t, "read-write", sh.DefaultPermission, "upgrading the operator does not make a writable share read-only")
	})

	t.Run("adapter port drift is restored", func(t *testing.T) {
		other := be.nfsPort + 1
		_, err := admin.UpdateAdapter(ctx(), "nfs", dittoapi.UpdateAdapterRequest{Port: &other})
		require.NoError(t, err)
		poke(t, ns, "s3")
		testenv.Eventually(t, "NFS adapter back on its port", func() error {
			a, err := admin.GetAdapter(ctx(), "nfs")
			if err != nil {
				return err
			}
			if a.Port != be.nfsPort {
				return fmt.Errorf("nfs port %d", a.Port)
			}
			return nil
		})
		testenv.WaitEvent(t, k8s, ns, "files", specs.EventAdapterUpdated)
	})

	t.Run("S3 credential rotation updates the store", func(t *testing.T) {
		hashBefore := configHashOf(t, ns)
		s := &corev1.Secret{}
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "s3"}, s))
		s.Data["accessKeyId"], s.Data["secretAccessKey"] = []byte("AKIA2"), []byte("secret-2")
		require.NoError(t, k8s.Update(ctx(), s))
		testenv.Eventually(t, "store carries the new key", func() error {
			st, err := admin.GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
			if err != nil {
				return err
			}
			if id := st.ConfigMap()["access_key_id"]; id != "AKIA2" {
				return fmt.Errorf("access_key_id %v", id)
			}
			return nil
		})
		// A rotation of the secret key alone (redacted on reads) is seen through the hash the
		// operator keeps on its Secret.
		hash := func() string {
			op := &corev1.Secret{}
			require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-operator-credentials"}, op))
			return op.Annotations[specs.AnnotationS3ConfigHash]
		}
		before := hash()
		require.NotEmpty(t, before)
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "s3"}, s))
		s.Data["secretAccessKey"] = []byte("secret-3")
		require.NoError(t, k8s.Update(ctx(), s))
		calls.reset(be.dfs.URL)
		testenv.Eventually(t, "store updated for the new secret key", func() error {
			if h := hash(); h == before {
				return fmt.Errorf("hash unchanged")
			}
			return nil
		})
		_, _, detail := calls.count(be.dfs.URL)
		assert.Contains(t, detail, "PUT /api/v1/store/block/remote/s3")
		assert.Equal(t, hashBefore, configHashOf(t, ns), "the configuration is unchanged")
		waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionTrue, specs.ReasonStoreHealthy)

		// DittoFS v0.29.0 keeps the S3 client it built for a running share: without a restart,
		// uploads after the PUT are still signed with the old key (seen here before the
		// operator restarted the pod). So the operator restarts the pod, through an annotation
		// of the pod template; the test plays the restart with the dfs it runs.
		op := &corev1.Secret{}
		testenv.Eventually(t, "the pod template carries the store update", func() error {
			require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-operator-credentials"}, op))
			want := op.Annotations[specs.AnnotationRemoteStoreUpdated]
			got := testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated]
			if want == "" || got != want {
				return fmt.Errorf("pod template %q, operator Secret %q", got, want)
			}
			return nil
		})
		testenv.WaitEvent(t, k8s, ns, "files", specs.EventRollingRestart)
		be.dfs.Restart(t)
		markReady(t, ns, "files")

		// Data written over the share (SMB, as the operator's account) after the rotation lands
		// in the bucket, signed with the new access key.
		inBucket := s3.objects(t, "ditto-bucket")
		s3.signedWrites()
		data := make([]byte, 3<<20)
		_, err := rand.Read(data)
		require.NoError(t, err)
		writeOverSMB(t, be.smbPt, string(op.Data["username"]), string(op.Data["password"]), specs.DefaultShareName, "after-rotation.bin", data)
		var added int64
		deadline := time.Now().Add(60 * time.Second) // DittoFS uploads blocks ~10 s after the last write
		for time.Now().Before(deadline) {
			added = 0
			for k, size := range s3.objects(t, "ditto-bucket") {
				if _, old := inBucket[k]; !old {
					added += size
				}
			}
			if added >= int64(len(data)) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		require.GreaterOrEqual(t, added, int64(len(data)), "bytes of new objects in the bucket after writing %d bytes", len(data))
		writes := s3.signedWrites()
		t.Logf("bucket: %d new bytes; S3 writes by access key: %v", added, writes)
		assert.Positive(t, writes["AKIA2"], "uploads signed with the rotated key")
		assert.Zero(t, writes["AKIA1"], "no upload with the old key")
	})

	t.Run("S3 store changed on the server: put back, no restart", func(t *testing.T) {
		stamp := func() string {
			return testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated]
		}
		before := stamp()
		require.NotEmpty(t, before, "set by the rotation above")
		st, err := admin.GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
		require.NoError(t, err)
		cfg := st.ConfigMap() // secret_access_key redacted; the server keeps the real one
		cfg["region"] = "eu-west-3"
		changed, err := admin.UpdateBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName, "s3", cfg)
		require.NoError(t, err)
		require.Equal(t, "eu-west-3", changed.ConfigMap()["region"])
		calls.reset(be.dfs.URL)
		poke(t, ns, "s3")
		testenv.Eventually(t, "region put back", func() error {
			st, err := admin.GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
			if err != nil {
				return err
			}
			if r := st.ConfigMap()["region"]; r != "us-east-1" {
				return fmt.Errorf("region %v", r)
			}
			return nil
		})
		_, _, detail := calls.count(be.dfs.URL)
		assert.Contains(t, detail, "PUT /api/v1/store/block/remote/s3", "put back by the operator")
		waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionTrue, specs.ReasonStoreHealthy)
		assert.Equal(t, before, stamp(), "no restart for a store put back")
	})

	t.Run("spec.shares: created, updated, pruned only when opted in", func(t *testing.T) {
		_, err := admin.CreateShare(ctx(), dittoapi.CreateShareRequest{Name: "/manual", MetadataStoreID: "default", LocalBlockStore: "default"})
		require.NoError(t, err)
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: "/export", DefaultPermission: "read-write"}, {Name: "/data", ReadOnly: true, DefaultPermission: "read-write"}}
		})
		shares := func() map[string]dittoapi.Share {
			list, err := admin.ListShares(ctx())
			require.NoError(t, err)
			out := map[string]dittoapi.Share{}
			for _, s := range list {
				out[s.Name] = s
			}
			return out
		}
		testenv.Eventually(t, "/data created, /export updated", func() error {
			got := shares()
			if d, ok := got["/data"]; !ok || !d.ReadOnly || d.RemoteBlockStoreID == nil {
				return fmt.Errorf("/data: %+v", d)
			}
			if got["/export"].DefaultPermission != "read-write" {
				return fmt.Errorf("/export: %+v", got["/export"])
			}
			return nil
		})
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) {
			ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: "/data", ReadOnly: true, DefaultPermission: "read-write"}}
		})
		waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
		time.Sleep(time.Second)
		assert.Contains(t, shares(), "/export", "not pruned without pruneShares")
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.PruneShares = true })
		testenv.Eventually(t, "/export pruned", func() error {
			if _, ok := shares()["/export"]; ok {
				return fmt.Errorf("/export still there")
			}
			return nil
		})
		got := shares()
		assert.Contains(t, got, "/manual", "a share the operator did not create is never pruned")
		assert.Contains(t, got, "/data")
	})

	t.Run("spec.snapshotPolicies: applied, put back, deleted only when the operator made them", func(t *testing.T) {
		// /manual (made with the API above, not in the spec) gets a policy of its own.
		_, err := admin.PutSnapshotPolicy(ctx(), "/manual", dittoapi.PutSnapshotPolicyRequest{Interval: "@daily", KeepLast: 2})
		require.NoError(t, err)
		policies := func() map[string]dittoapi.SnapshotPolicy {
			list, err := admin.ListSnapshotPolicies(ctx())
			require.NoError(t, err)
			out := map[string]dittoapi.SnapshotPolicy{}
			for _, p := range list {
				out["/"+strings.TrimLeft(p.Share, "/")] = p
			}
			return out
		}
		want := func(interval string, keep int, ttl string) func() error {
			return func() error {
				p, ok := policies()["/data"]
				if !ok || p.Interval != interval || p.KeepLast != keep || p.TTL != ttl || !p.Enabled {
					return fmt.Errorf("/data policy: %+v (present %v)", p, ok)
				}
				return nil
			}
		}
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) {
			ds.Spec.SnapshotPolicies = []v1alpha1.SnapshotPolicySpec{{Share: "/data", Interval: "6h", KeepLast: 4, TTL: "168h"}}
		})
		testenv.Eventually(t, "the /data policy applied", want("6h0m0s", 4, "168h0m0s"))
		testenv.WaitEvent(t, k8s, ns, "files", specs.EventSnapshotPolicyApplied)

		calls.reset(be.dfs.URL)
		poke(t, ns, "s3")
		_, writes, detail := quiesce(t, be.dfs.URL)
		assert.Zero(t, writes, "a policy that matches the spec is not written again: %s", detail)

		_, err = admin.PutSnapshotPolicy(ctx(), "/data", dittoapi.PutSnapshotPolicyRequest{Interval: "1h", KeepLast: 100})
		require.NoError(t, err)
		poke(t, ns, "s3")
		testenv.Eventually(t, "the changed policy put back", want("6h0m0s", 4, "168h0m0s"))

		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) {
			ds.Spec.SnapshotPolicies = []v1alpha1.SnapshotPolicySpec{{Share: "/nowhere", Interval: "@hourly"}}
		})
		waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionFalse, specs.ReasonControlPlaneFailed,
			"share /nowhere does not exist", "spec.shares")

		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.SnapshotPolicies = nil })
		waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
		testenv.Eventually(t, "the operator's policy deleted", func() error {
			if p, ok := policies()["/data"]; ok {
				return fmt.Errorf("/data policy still there: %+v", p)
			}
			return nil
		})
		manual, ok := policies()["/manual"]
		assert.True(t, ok, "a policy the operator did not make is never deleted")
		assert.Equal(t, 2, manual.KeepLast)
		testenv.WaitEvent(t, k8s, ns, "files", specs.EventSnapshotPolicyDeleted)
	})

	t.Run("wrong bucket: StorageReady=False with the server's message", func(t *testing.T) {
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.S3.Bucket = "no-such-bucket" })
		ds := waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionFalse, "", "no-such-bucket")
		c := testenv.Condition(ds, specs.ConditionStorageReady)
		t.Logf("StorageReady: %s: %s", c.Reason, c.Message)
		waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionFalse, "")
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.S3.Bucket = "ditto-bucket" })
		waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionTrue, specs.ReasonStoreHealthy)
		markReady(t, ns, "files")
	})

	t.Run("private endpoint without allowPrivateEndpoint: refused, the store left as it is", func(t *testing.T) {
		before, err := be.dfs.Admin(t).GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
		require.NoError(t, err)
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.S3.AllowPrivateEndpoint = false })
		ds := waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionFalse, specs.ReasonS3EndpointRefused, "spec.s3.allowPrivateEndpoint: true")
		t.Logf("StorageReady: %s", testenv.Condition(ds, specs.ConditionStorageReady).Message)
		waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionFalse, "")
		after, err := be.dfs.Admin(t).GetBlockStore(ctx(), dittoapi.BlockRemote, specs.S3StoreName)
		require.NoError(t, err)
		assert.Equal(t, before.ConfigMap(), after.ConfigMap(), "the store is not rewritten while the endpoint is refused")
		testenv.UpdateServer(t, k8s, ns, "files", func(ds *v1alpha1.DittoServer) { ds.Spec.S3.AllowPrivateEndpoint = true })
		waitCondition(t, ns, "files", specs.ConditionStorageReady, metav1.ConditionTrue, specs.ReasonStoreHealthy)
		markReady(t, ns, "files")
	})
}

// TestAdminPasswordChangedOutOfBand: the admin Secret no longer logs in → one clear event,
// ControlPlaneReady=False, no retry loop; fixing the Secret recovers.
func TestAdminPasswordChangedOutOfBand(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files")
	admin := be.dfs.Admin(t)
	_, err := admin.ChangeOwnPassword(ctx(), "admin-password-for-tests", "rotated-by-someone-else")
	require.NoError(t, err)

	server(t, ns, "files", nil)
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionFalse, specs.ReasonAdminCredentialUnauthorized, "admin")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonAdminCredentialUnauthorized)
	calls.reset(be.dfs.URL)
	time.Sleep(4 * time.Second)
	total, _, detail := calls.count(be.dfs.URL)
	assert.LessOrEqual(t, total, 1, "no retry loop: %s", detail)
	events := testenv.Events(t, k8s, ns, "files", specs.EventAdminCredentialUnauthorized)
	assert.Len(t, events, 1, "one event")

	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "admin"}, s))
	s.Data["password"] = []byte("rotated-by-someone-else")
	require.NoError(t, k8s.Update(ctx(), s))
	// The operator account is provisioned with the password now in the Secret (no restart: DittoFS
	// reads the initial password on first boot only).
	markReady(t, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
	sh, err := admin.GetShare(ctx(), specs.DefaultShareName)
	require.NoError(t, err)
	assert.Nil(t, sh.RemoteBlockStoreID, "no spec.s3: local only")
	smb, err := admin.GetAdapter(ctx(), "smb")
	require.NoError(t, err)
	assert.False(t, smb.Enabled, "spec.smb unset: the SMB adapter DittoFS starts by default is switched off")
	assert.False(t, smb.Running)
	assert.Nil(t, testenv.Condition(testenv.GetServer(t, k8s, ns, "files"), specs.ConditionStorageReady), "no StorageReady without spec.s3")
}

// TestAPIUnreachable: the pod is Ready but its API does not answer the operator →
// ControlPlaneReady=Unknown, Ready=False (APIUnreachable, saying what to check), one event; a
// retry that fails again
// writes no status (the message does not quote the varying network error); once the API
// answers, the step runs.
func TestAPIUnreachable(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	server(t, ns, "files", nil)
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionUnknown, specs.ReasonAPIUnreachable, "did not answer")
	ds := waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonAPIUnreachable, "did not answer", "--dittofs-api-address=pod-ip")

	const nowhere = "http://127.0.0.1:1" // startManager's endpoint for a server without a dfs
	unanswered := apiCalls(t, "", "error")
	assert.Positive(t, unanswered, "calls without an answer are in dittofs_api_request_duration_seconds{code=\"error\"}")
	calls.reset(nowhere)
	poke(t, ns, "admin")
	total, _, detail := quiesce(t, nowhere)
	t.Logf("retry: %d calls (%s)", total, detail)
	assert.Equal(t, ds.ResourceVersion, testenv.GetServer(t, k8s, ns, "files").ResourceVersion, "a failed retry writes no status")
	events := testenv.Events(t, k8s, ns, "files", specs.EventControlPlaneUnreachable)
	require.Len(t, events, 1, "one event")
	assert.Contains(t, events[0], "127.0.0.1:1", "the event has the address")
	assert.Contains(t, events[0], "refused", "the event has the error")

	startBackend(t, ns, "files")
	poke(t, ns, "admin")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
	c := testenv.Condition(waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, ""), specs.ConditionReady)
	assert.NotContains(t, c.Message, "did not answer")
}

// TestTokenRefresh: the operator refreshes its session before the access token expires
// (within a minute of expiry) instead of logging in again.
func TestTokenRefresh(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files", dfstest.WithAccessTokenTTL(45*time.Second))
	server(t, ns, "files", nil)
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
	quiesce(t, be.dfs.URL) // the reconciles that provisioning's own writes trigger

	calls.reset(be.dfs.URL)
	poke(t, ns, "admin")
	total, _, detail := quiesce(t, be.dfs.URL)
	t.Logf("reconcile with a token 45 s from expiry: %d calls (%s)", total, detail)
	assert.Contains(t, detail, "POST /api/v1/auth/refresh", "the session is refreshed")
	assert.NotContains(t, detail, "/api/v1/auth/login", "no new login")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
}

// TestHangingAPI: an API that accepts connections and never answers holds the control-plane
// step for its budget (here 1 s), not for the HTTP client's 10 s per call; the server is
// reported like one whose API does not answer.
func TestHangingAPI(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer hang.Close()
	defer close(release)
	mgr := startManager(t, func(o *controlplane.Options) { o.Budget = time.Second })
	defer mgr.Stop(t)
	ns := newNamespace(t)
	endpoints.Store(ns+"/files", hang.URL)
	t.Cleanup(func() { endpoints.Delete(ns + "/files") })
	server(t, ns, "files", nil)
	testenv.GetStatefulSet(t, k8s, ns, "files")
	start := time.Now()
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionUnknown, specs.ReasonAPIUnreachable)
	took := time.Since(start)
	t.Logf("ControlPlaneReady=Unknown %s after the pod became ready", took.Round(time.Millisecond))
	assert.Less(t, took, 6*time.Second, "the step gave up after its 1 s budget, not after the 10 s call timeout")
	events := testenv.Events(t, k8s, ns, "files", specs.EventControlPlaneUnreachable)
	require.Len(t, events, 1)
	assert.Contains(t, events[0], "deadline exceeded")
}

// apiCalls is the number of the operator's API calls observed in
// dittofs_api_request_duration_seconds with the given endpoint ("" for any) and code.
func apiCalls(t *testing.T, endpoint, code string) uint64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	require.NoError(t, err)
	var n uint64
	for _, f := range families {
		if f.GetName() != "dittofs_api_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["code"] == code && (endpoint == "" || labels["endpoint"] == endpoint) {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
