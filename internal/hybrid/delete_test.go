package hybrid

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// indexedClient reads DittoServers from an informer cache with the Secret index, as the
// manager's client does, and writes to the API server.
func indexedClient(t *testing.T) client.Client {
	t.Helper()
	c, err := cache.New(server.Config, cache.Options{Scheme: server.Scheme})
	require.NoError(t, err)
	require.NoError(t, c.IndexField(ctx(), &v1alpha1.DittoServer{}, indexSecretNames, func(o client.Object) []string {
		return specs.ReferencedSecretNames(o.(*v1alpha1.DittoServer))
	}))
	runCtx, cancel := context.WithCancel(ctx())
	t.Cleanup(cancel)
	go func() { _ = c.Start(runCtx) }()
	require.True(t, c.WaitForCacheSync(runCtx))
	cl, err := client.New(server.Config, client.Options{Scheme: server.Scheme, Cache: &client.CacheOptions{Reader: c}})
	require.NoError(t, err)
	return cl
}

// TestReconcileDelete: a deleted server without Percona goes at once (its owned objects are the
// garbage collector's, its PVCs are kept), and the copies of Secrets only it read are dropped.
func TestReconcileDelete(t *testing.T) {
	r, events := newReconciler(t)
	r.Client = indexedClient(t)
	r.Secrets.Meta = k8s
	ns := newNamespace(t)
	refs := userSecrets(t, ns)
	withFinalizer := func(name string) *v1alpha1.DittoServer {
		ds := newServer(t, ns, name, refs)
		controllerutil.AddFinalizer(ds, specs.Finalizer)
		require.NoError(t, k8s.Update(ctx(), ds))
		return ds
	}
	gone, stays := withFinalizer("gone"), withFinalizer("stays")
	for _, name := range []string{"jwt", "admin"} {
		require.NoError(t, r.Secrets.Get(ctx(), types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{}))
	}
	require.Equal(t, 2, r.Secrets.kept())

	require.NoError(t, k8s.Delete(ctx(), gone))
	deleted := &v1alpha1.DittoServer{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(gone), deleted))
	res, err := r.reconcileDelete(ctx(), deleted)
	require.NoError(t, err)
	assert.Zero(t, res.RequeueAfter)
	err = k8s.Get(ctx(), client.ObjectKeyFromObject(gone), &v1alpha1.DittoServer{})
	assert.True(t, apierrors.IsNotFound(err), "the finalizer is removed: %v", err)
	assert.Contains(t, drain(events), "Normal Deleting Deleting: owned objects are garbage-collected; PersistentVolumeClaims and generated credentials are kept: a DittoServer created again with this name adopts them")
	assert.Equal(t, 2, r.Secrets.kept(), "server %s still reads both Secrets", stays.Name)

	require.NoError(t, k8s.Delete(ctx(), stays))
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(stays), deleted))
	_, err = r.reconcileDelete(ctx(), deleted)
	require.NoError(t, err)
	assert.Zero(t, r.Secrets.kept(), "no server reads them any more")
}

// TestSecretReader: a user Secret is read from the API server once per change.
func TestSecretReader(t *testing.T) {
	ns := newNamespace(t)
	api := &countingReader{Reader: k8s}
	r := NewSecretReader(nil, api)
	r.Meta = k8s
	key := types.NamespacedName{Namespace: ns, Name: "user"}
	s := newSecret(t, ns, "user", map[string]string{"k": "v1"})

	read := func() string {
		got := &corev1.Secret{}
		require.NoError(t, r.Get(ctx(), key, got))
		return string(got.Data["k"])
	}
	assert.Equal(t, "v1", read())
	assert.Equal(t, "v1", read())
	assert.Equal(t, 1, api.gets, "the same resourceVersion: the kept copy")

	s.StringData = map[string]string{"k": "v2"}
	require.NoError(t, k8s.Update(ctx(), s))
	assert.Equal(t, "v2", read(), "a new resourceVersion is read again")
	assert.Equal(t, 2, api.gets)

	r.Forget(key)
	assert.Zero(t, r.kept())
	require.NoError(t, k8s.Delete(ctx(), s))
	err := r.Get(ctx(), key, &corev1.Secret{})
	assert.True(t, apierrors.IsNotFound(err))
	assert.Zero(t, r.kept(), "nothing kept of a Secret that is gone")

	cached := NewSecretReader(k8s, api)
	newSecret(t, ns, "generated", map[string]string{"k": "g"})
	before := api.gets
	require.NoError(t, cached.Get(ctx(), types.NamespacedName{Namespace: ns, Name: "generated"}, &corev1.Secret{}))
	assert.Equal(t, before, api.gets, "Secrets in the operator's cache never reach the API reader")
}

type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// kept is the number of Secrets with a kept copy.
func (r *SecretReader) kept() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.store)
}

// TestDeleteWithServerLeavesNoPVC: with deleteWithServer the StatefulSet is deleted with the
// server's data, and the cleanup finishes only once it is gone, with a last pass over the PVCs:
// a PVC the StatefulSet controller created after the first pass (a server deleted right after it
// was created) does not outlive the server.
func TestDeleteWithServerLeavesNoPVC(t *testing.T) {
	r, events := newReconciler(t)
	ns := newNamespace(t)
	ds := newServer(t, ns, "gone", func(s *v1alpha1.DittoServerSpec) { s.Storage.DeleteWithServer = true })
	controllerutil.AddFinalizer(ds, specs.Finalizer)
	require.NoError(t, k8s.Update(ctx(), ds))
	labels := map[string]string{specs.LabelInstance: "gone", specs.LabelPartOf: specs.PartOf}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: ns, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "dittofs", Image: "dittofs"}}},
			},
		},
	}
	require.NoError(t, controllerutil.SetControllerReference(ds, sts, server.Scheme))
	require.NoError(t, k8s.Create(ctx(), sts))
	pvc := func(name string) {
		require.NoError(t, k8s.Create(ctx(), &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}))
	}
	goneOrDeleting := func(name string) {
		t.Helper()
		got := &corev1.PersistentVolumeClaim{}
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, got)
		assert.True(t, apierrors.IsNotFound(err) || (err == nil && !got.DeletionTimestamp.IsZero()), "PVC %s deleted: %v", name, err)
	}
	pvc("metadata-gone-0")
	require.NoError(t, k8s.Delete(ctx(), ds))

	deleted := &v1alpha1.DittoServer{}
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(ds), deleted))
	res, err := r.reconcileDelete(ctx(), deleted)
	require.NoError(t, err)
	assert.NotZero(t, res.RequeueAfter, "waits for the StatefulSet to be gone")
	require.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(ds), deleted), "the finalizer stays meanwhile")
	err = k8s.Get(ctx(), client.ObjectKeyFromObject(sts), &appsv1.StatefulSet{})
	assert.True(t, apierrors.IsNotFound(err), "the StatefulSet is deleted: %v", err)
	goneOrDeleting("metadata-gone-0")

	// what the StatefulSet controller, working from its cache, may still create
	pvc("content-gone-0")
	res, err = r.reconcileDelete(ctx(), deleted)
	require.NoError(t, err)
	assert.Zero(t, res.RequeueAfter)
	err = k8s.Get(ctx(), client.ObjectKeyFromObject(ds), &v1alpha1.DittoServer{})
	assert.True(t, apierrors.IsNotFound(err), "the finalizer is removed: %v", err)
	goneOrDeleting("content-gone-0")
	all := strings.Join(drain(events), "\n")
	assert.Contains(t, all, "Normal DataDeleted Deleted with the server (spec.storage.deleteWithServer): PersistentVolumeClaim metadata-gone-0")
	assert.Contains(t, all, "Normal DataDeleted Deleted with the server (spec.storage.deleteWithServer): PersistentVolumeClaim content-gone-0")
}
