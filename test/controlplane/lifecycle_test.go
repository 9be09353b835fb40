package controlplane

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/dittoapi/dfstest"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestAdminPasswordRotation: a new password in the admin Secret is set on the server through
// the API, as the operator's account; the pod is not restarted (DittoFS reads the initial
// password on first boot only).
func TestAdminPasswordRotation(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files")
	server(t, ns, "files", nil)
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	hash := configHashOf(t, ns)

	s := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "admin"}, s))
	s.Data["password"] = []byte("rotated-through-the-secret")
	require.NoError(t, k8s.Update(ctx(), s))
	// The operator sets the password as its own account (DittoFS then asks the admin to change
	// it), then logs in as the admin and confirms it: the rotation is complete when the new
	// password logs in without a pending change. Between the two calls the password already
	// logs in, so waiting for the login alone would race with the confirmation.
	testenv.Eventually(t, "the new admin password logs in, confirmed", func() error {
		tok, err := dittoapi.New(be.dfs.URL, nil).Login(ctx(), specs.DefaultAdminUser, "rotated-through-the-secret")
		if err != nil {
			return err
		}
		if tok.User.MustChangePassword {
			return fmt.Errorf("logs in, but must still be changed: the operator has not confirmed it yet")
		}
		return nil
	})
	_, err := dittoapi.New(be.dfs.URL, nil).Login(ctx(), specs.DefaultAdminUser, dfstest.AdminPassword)
	assert.True(t, dittoapi.IsUnauthorized(err), "the old password no longer logs in: %v", err)
	assert.Equal(t, hash, configHashOf(t, ns), "no restart")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	// Events are written asynchronously by the recorder.
	testenv.Eventually(t, "one AdminPasswordChanged event", func() error {
		if n := len(testenv.Events(t, k8s, ns, "files", specs.EventAdminPasswordChanged)); n != 1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
}

// TestRecreateKeepsTheServer: a server deleted and created again with the same name, on the
// same (kept) data, logs in with the kept credentials: no new admin password, the shares and
// the operator account of the first one are used as they are.
func TestRecreateKeepsTheServer(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	be := startBackend(t, ns, "files")
	// Generated admin credentials, as in the quick start: the dfs is started with them.
	ds := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	require.NoError(t, k8s.Create(ctx(), ds))
	testenv.GetStatefulSet(t, k8s, ns, "files")
	generated := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-admin-credentials"}, generated))
	password := string(generated.Data[specs.AdminPasswordKey])
	// The pod would boot with it (first boot): set it on the test server as the first boot did.
	_, err := be.dfs.Admin(t).ChangeOwnPassword(ctx(), dfstest.AdminPassword, password)
	require.NoError(t, err)
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	opSecret := &corev1.Secret{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-operator-credentials"}, opSecret))
	assert.Empty(t, opSecret.OwnerReferences, "kept with the data")

	require.NoError(t, k8s.Delete(ctx(), ds))
	testenv.Eventually(t, "server gone", func() error {
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files"}, &v1alpha1.DittoServer{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return assert.AnError
	})
	// The garbage collector's share (envtest runs none): the StatefulSet goes, its pod and
	// volumes stay (here: the dfs keeps running on its data).
	require.NoError(t, client.IgnoreNotFound(k8s.Delete(ctx(), testenv.GetStatefulSet(t, k8s, ns, "files"))))
	for _, name := range []string{"files-admin-credentials", "files-jwt-secret", "files-operator-credentials"} {
		require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{}), "%s kept", name)
	}

	calls.reset(be.dfs.URL)
	again := &v1alpha1.DittoServer{
		ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: ns},
		Spec:       v1alpha1.DittoServerSpec{Storage: v1alpha1.StorageSpec{MetadataSize: "1Gi"}},
	}
	require.NoError(t, k8s.Create(ctx(), again))
	testenv.GetStatefulSet(t, k8s, ns, "files")
	testenv.MarkStatefulSetReady(t, k8s, ns, "files")
	waitCondition(t, ns, "files", specs.ConditionControlPlaneReady, metav1.ConditionTrue, specs.ReasonControlPlaneApplied)
	waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
	require.NoError(t, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "files-admin-credentials"}, generated))
	assert.Equal(t, password, string(generated.Data[specs.AdminPasswordKey]), "adopted, not generated again")
	_, err = dittoapi.New(be.dfs.URL, nil).Login(ctx(), specs.DefaultAdminUser, password)
	assert.NoError(t, err, "the kept admin password still opens the server")
	assert.Empty(t, testenv.Events(t, k8s, ns, "files", specs.EventAdminCredentialUnauthorized))
	assert.Empty(t, testenv.Events(t, k8s, ns, "files", specs.EventOperatorAccountProvisioned)[1:], "the kept operator account logs in: provisioned once, by the first server")
	admin := dittoapi.New(be.dfs.URL, nil)
	_, err = admin.Login(ctx(), specs.DefaultAdminUser, password)
	require.NoError(t, err)
	shares, err := admin.ListShares(ctx())
	require.NoError(t, err)
	require.Len(t, shares, 1)
	assert.Equal(t, specs.DefaultShareName, shares[0].Name, "the share of the first server, not a second one")
}

// TestStoresOnTheirVolumes: the stores the operator creates are on the volumes the spec declares
// for them, sized to them: the content volume holds the files of a server without spec.s3; a
// store made before (no size) is sized once, with one restart.
func TestStoresOnTheirVolumes(t *testing.T) {
	mgr := startManager(t)
	defer mgr.Stop(t)

	t.Run("content volume", func(t *testing.T) {
		ns := newNamespace(t)
		be := startBackend(t, ns, "files")
		server(t, ns, "files", func(s *v1alpha1.DittoServerSpec) { s.Storage.ContentSize = "2Gi" })
		sts := testenv.GetStatefulSet(t, k8s, ns, "files")
		var claims []string
		for _, c := range sts.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		assert.Equal(t, []string{"controlplane", "metadata", "content"}, claims, "no cache volume nothing would use")
		testenv.MarkStatefulSetReady(t, k8s, ns, "files")
		waitCondition(t, ns, "files", specs.ConditionReady, metav1.ConditionTrue, "")
		store, err := be.dfs.Admin(t).GetBlockStore(ctx(), dittoapi.BlockLocal, specs.DefaultLocalStoreName)
		require.NoError(t, err)
		cfg := store.ConfigMap()
		assert.True(t, strings.HasSuffix(cfg["path"].(string), "/data/content/blocks"), "on the content volume: %v", cfg["path"])
		assert.EqualValues(t, int64(2<<30)/10*9, cfg["max_size"], "90% of the volume")
		md, err := be.dfs.Admin(t).GetMetadataStore(ctx(), specs.DefaultMetadataStoreName)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(md.ConfigMap()["path"].(string), "/data/metadata/default"), "metadata on the metadata volume")
	})

	t.Run("a store made before is sized once", func(t *testing.T) {
		ns := newNamespace(t)
		be := startBackend(t, ns, "files")
		admin := be.dfs.Admin(t)
		// As operators before this one made it: on the cache volume, no size.
		_, err := admin.CreateBlockStore(ctx(), dittoapi.BlockLocal, specs.DefaultLocalStoreName, "fs",
			map[string]any{"path": filepath.Join(be.dfs.Dir, "pod", "data", "cache", "blocks")})
		require.NoError(t, err)
		server(t, ns, "files", nil)
		testenv.GetStatefulSet(t, k8s, ns, "files")
		testenv.MarkStatefulSetReady(t, k8s, ns, "files")
		testenv.Eventually(t, "sized", func() error {
			store, err := admin.GetBlockStore(ctx(), dittoapi.BlockLocal, specs.DefaultLocalStoreName)
			if err != nil {
				return err
			}
			if n, _ := store.ConfigMap()["max_size"].(float64); int64(n) != int64(5<<30)/10*9 {
				return fmt.Errorf("max_size %v", store.ConfigMap()["max_size"])
			}
			return nil
		})
		testenv.Eventually(t, "the pod restarts to load it", func() error {
			if testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated] == "" {
				return fmt.Errorf("no restart yet")
			}
			return nil
		})
		markReady(t, ns, "files")
		restartedAt := testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated]
		calls.reset(be.dfs.URL)
		poke(t, ns, "admin") // one more reconcile
		_, writes, detail := quiesce(t, be.dfs.URL)
		assert.Zero(t, writes, "sized once: %s", detail)
		assert.Equal(t, restartedAt, testenv.GetStatefulSet(t, k8s, ns, "files").Spec.Template.Annotations[specs.AnnotationRemoteStoreUpdated], "one restart")
	})
}
