package integration

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// releaseSecrets is Helm's Secret storage of a namespace, as the operator writes it.
func releaseSecrets(t *testing.T, ns string) *driver.Secrets {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	require.NoError(t, err)
	return driver.NewSecrets(cs.CoreV1().Secrets(ns))
}

// leavePendingInstall rewrites a server's release as an operator killed during the install
// leaves it: one revision, pending-install, last deployed "now" (after any operator started).
func leavePendingInstall(t *testing.T, ns, name string) {
	t.Helper()
	d := releaseSecrets(t, ns)
	rels, err := d.Query(map[string]string{"name": name, "owner": "helm"})
	require.NoError(t, err)
	var last *release.Release
	for _, r := range rels {
		if last == nil || r.Version > last.Version {
			last = r
		}
	}
	for _, r := range rels {
		if r != last {
			_, err := d.Delete(fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, r.Version))
			require.NoError(t, err)
		}
	}
	last.Info.Status = release.StatusPendingInstall
	last.Info.LastDeployed = last.Info.LastDeployed.Add(time.Hour)
	require.NoError(t, d.Update(fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, last.Version), last))
}

func releaseStatuses(t *testing.T, ns, name string) []string {
	t.Helper()
	rels, err := releaseSecrets(t, ns).Query(map[string]string{"name": name, "owner": "helm"})
	require.NoError(t, err)
	out := make([]string, 0, len(rels))
	for _, r := range rels {
		out = append(out, fmt.Sprintf("v%d:%s", r.Version, r.Info.Status))
	}
	return out
}

// TestRecoversWhatAKilledOperatorLeft: the states an operator killed at the wrong moment (or a
// leader that lost its lease, or an API server lost mid-upgrade) leaves behind are recovered
// by the next operator process, whatever their time.
//   - A release left pending-install whose spec changed meanwhile (another port, metrics off):
//     the -file Service ends with the one new port (not a second "nfs" port next to the old
//     one), the -metrics Service the killed install made is deleted, the release is deployed.
//   - A server whose deletion the Go controller finished (its finalizer removed) but whose Helm
//     release was not uninstalled yet: the new process uninstalls it and the server is gone.
func TestRecoversWhatAKilledOperatorLeft(t *testing.T) {
	mgr := env.StartManager(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	for _, name := range []string{"pending", "deleting"} {
		ds := basicServer(ns, name)
		ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true)}
		require.NoError(t, k8s.Create(ctx(), ds))
		getStatefulSet(t, ns, name)
		markStatefulSetReady(t, ns, name)
		waitCondition(t, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	}
	mgr.Stop(t)

	leavePendingInstall(t, ns, "pending")
	updateServer(t, ns, "pending", func(ds *v1alpha1.DittoServer) {
		ds.Spec.NFSPort = ptr.To[int32](12050)
		ds.Spec.Metrics.Enabled = ptr.To(false)
	})
	ds := getServer(t, ns, "deleting")
	require.NoError(t, k8s.Delete(ctx(), ds))
	ds = getServer(t, ns, "deleting")
	controllerutil.RemoveFinalizer(ds, specs.Finalizer)
	require.NoError(t, k8s.Update(ctx(), ds))
	require.Equal(t, []string{specs.HelmUninstallFinalizer}, getServer(t, ns, "deleting").Finalizers)

	mgr = env.StartManager(t)
	defer mgr.Stop(t)

	waitGone(t, ns, "deleting")
	eventually(t, "the pending release recovered and upgraded", func() error {
		markStatefulSetReady(t, ns, "pending") // the pod rolled (metrics off changes the config)
		ds := getServer(t, ns, "pending")
		if c := condition(ds, specs.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != ds.Generation {
			return fmt.Errorf("Ready: %+v", c)
		}
		svc := &corev1.Service{}
		if err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "pending-file"}, svc); err != nil {
			return err
		}
		var nfs []int32
		for _, p := range svc.Spec.Ports {
			if p.Name == "nfs" {
				nfs = append(nfs, p.Port)
			}
		}
		if len(nfs) != 1 || nfs[0] != 12050 {
			return fmt.Errorf("-file Service NFS ports %v", nfs)
		}
		err := k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "pending-metrics"}, &corev1.Service{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("-metrics Service of the killed install still there: %w", err)
		}
		// The objects are applied before Helm records the upgrade: wait for the record too.
		if statuses := releaseStatuses(t, ns, "pending"); !slices.Contains(statuses, "v2:deployed") {
			return fmt.Errorf("release revisions %v, want v2 deployed", statuses)
		}
		return nil
	})
	statuses := releaseStatuses(t, ns, "pending")
	assert.NotContains(t, fmt.Sprint(statuses), "pending", "no revision left pending: %v", statuses)
	if c := condition(getServer(t, ns, "pending"), specs.ConditionReleaseFailed); c != nil {
		assert.Equal(t, metav1.ConditionFalse, c.Status, "ReleaseFailed: %s", c.Message)
	}
}

// TestKeptVolumesGrowWithTheSpec: a server created again with larger sizes than the PVCs it
// adopts grows them (the StatefulSet controller never resizes an existing PVC); when their
// StorageClass cannot expand, the claim template keeps the PVC's size and Ready says so.
func TestKeptVolumesGrowWithTheSpec(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	expandable, fixed := ns+"-expandable", ns+"-fixed"
	for name, allow := range map[string]bool{expandable: true, fixed: false} {
		require.NoError(t, k8s.Create(ctx(), &storagev1.StorageClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/none", AllowVolumeExpansion: ptr.To(allow),
		}))
	}
	for name, class := range map[string]string{"grows": expandable, "stays": fixed} {
		old := readyServerOn(t, ns, name, class)
		require.Equal(t, "10Gi", claimSize(t, ns, "metadata-"+name+"-0"))
		ds := getServer(t, ns, name)
		require.NoError(t, k8s.Delete(ctx(), ds))
		waitGone(t, ns, name)
		collectGarbage(t, ns, ds.UID)
		require.NoError(t, client.IgnoreNotFound(k8s.Delete(ctx(), old)))

		again := basicServer(ns, name)
		again.Spec.Storage.StorageClassName = ptr.To(class)
		again.Spec.Storage.MetadataSize = "12Gi"
		require.NoError(t, k8s.Create(ctx(), again))
	}

	sts := getStatefulSet(t, ns, "grows")
	assert.Equal(t, "12Gi", templateSize(sts, specs.VolumeMetadata))
	eventually(t, "kept PVC resized", func() error {
		if got := claimSize(t, ns, "metadata-grows-0"); got != "12Gi" {
			return fmt.Errorf("metadata-grows-0 requests %s", got)
		}
		return nil
	})
	assert.NotEmpty(t, events(t, ns, "grows", specs.EventVolumesExpanding))

	sts = getStatefulSet(t, ns, "stays")
	assert.Equal(t, "10Gi", templateSize(sts, specs.VolumeMetadata), "the template says what the server has")
	assert.Equal(t, "10Gi", claimSize(t, ns, "metadata-stays-0"))
	markStatefulSetReady(t, ns, "stays")
	ready := waitCondition(t, ns, "stays", specs.ConditionReady, metav1.ConditionTrue, "")
	assert.Contains(t, condition(ready, specs.ConditionReady).Message, "spec.storage.metadataSize 10Gi -> 12Gi is not applied")
	assert.NotEmpty(t, events(t, ns, "stays", specs.ReasonVolumeExpansionBlocked))
}

// TestDeletionTakesThePodAnInterruptedRecreationLeft: the volume step re-creates a StatefulSet
// by deleting it with orphan propagation (the pod keeps running, the new StatefulSet adopts
// it). An operator stopped between the two, then the server deleted, left that pod with no
// owner: the garbage collector never took it and it kept the volumes mounted (found by the
// fault suite, chaos-2). Deleting the server deletes such a pod; a pod some controller owns,
// and a pod of another server, are left to their owners.
func TestDeletionTakesThePodAnInterruptedRecreationLeft(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "orphans")))
	sts := getStatefulSet(t, ns, "orphans")
	markStatefulSetReady(t, ns, "orphans")
	waitCondition(t, ns, "orphans", specs.ConditionReady, metav1.ConditionTrue, "")

	pod := func(name string, labels map[string]string, owner *appsv1.StatefulSet) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "dittofs", Image: "example.com/dittofs"}}},
		}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(owner, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))}
		}
		require.NoError(t, k8s.Create(ctx(), p))
		return p
	}
	orphan := pod("orphans-0", sts.Spec.Template.Labels, nil)
	owned := pod("orphans-owned", sts.Spec.Template.Labels, sts)
	other := map[string]string{}
	for k, v := range sts.Spec.Template.Labels {
		other[k] = v
	}
	other[specs.LabelInstance] = "another-server"
	neighbour := pod("another-server-0", other, nil)

	require.NoError(t, k8s.Delete(ctx(), getServer(t, ns, "orphans")))
	waitGone(t, ns, "orphans")
	err := k8s.Get(ctx(), client.ObjectKeyFromObject(orphan), &corev1.Pod{})
	assert.True(t, apierrors.IsNotFound(err), "the pod left without a StatefulSet is deleted with its server: %v", err)
	for _, p := range []*corev1.Pod{owned, neighbour} {
		assert.NoError(t, k8s.Get(ctx(), client.ObjectKeyFromObject(p), &corev1.Pod{}), "pod %s is not the operator's to delete", p.Name)
	}
}

// TestKeptOptionalVolumeIsMountedAgain: a server created where one of its name left the claim
// of a volume the new spec would not provision (here the cache volume of a server that stores
// its files on the content volume) mounts it again: the operator finds the claim (its metadata
// cache tells it to list the server's claims) and keeps it in the claim templates.
func TestKeptOptionalVolumeIsMountedAgain(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	kept := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "cache-kept-0", Namespace: ns, Labels: map[string]string{
			specs.LabelInstance: "kept", specs.LabelPartOf: specs.PartOf, specs.LabelComponent: specs.VolumeCache}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
		},
	}
	require.NoError(t, k8s.Create(ctx(), kept))
	time.Sleep(time.Second) // the operator's watch sees the claim

	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "kept"))) // files on the content volume
	var templates []string
	for _, c := range getStatefulSet(t, ns, "kept").Spec.VolumeClaimTemplates {
		templates = append(templates, c.Name)
	}
	assert.Equal(t, []string{specs.VolumeControlPlane, specs.VolumeMetadata, specs.VolumeCache, specs.VolumeContent}, templates)

	require.NoError(t, k8s.Create(ctx(), basicServer(ns, "fresh")))
	templates = nil
	for _, c := range getStatefulSet(t, ns, "fresh").Spec.VolumeClaimTemplates {
		templates = append(templates, c.Name)
	}
	assert.Equal(t, []string{specs.VolumeControlPlane, specs.VolumeMetadata, specs.VolumeContent}, templates, "a volume nothing uses is not provisioned")
}
