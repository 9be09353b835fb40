// Package e2e runs the operator binary against a local kwok cluster (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd and kwok, built by hack/build-k8s.sh; started by
// hack/kwok-cluster.sh). Pods are only reported Running by kwok: the test covers what the operator
// and the Kubernetes controllers do (objects, status, PVC binding, garbage collection), not DittoFS.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/test/kwok"
)

const (
	namespace  = "dittofs"
	serverName = "dittoserver-sample" // config/samples/dittofs_v1alpha1_dittoserver.yaml
)

func TestOperatorOnKwok(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	start := time.Now()
	// The cluster, deleted at the end whatever happens.
	c := kwok.NewCluster(t, fmt.Sprintf("dittofs-e2e-%d", os.Getpid()))
	root := c.Root

	// The operator binary as make build (and the image) builds it; a no-op when up to date.
	phase := time.Now()
	manager := kwok.BuildManager(t, root)
	t.Logf("bin/manager ready in %s", time.Since(phase).Round(time.Millisecond))

	phase = time.Now()
	c.Up()
	t.Logf("cluster %s up in %s", c.Name, time.Since(phase).Round(time.Millisecond))

	_, k8s := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// CRD; then restart the controller-manager so its garbage collector knows DittoServer at once.
	phase = time.Now()
	c.InstallCRDs([]string{"dittoservers.dittofs.dittofs.com"}, filepath.Join(root, "config", "crd", "bases"))
	c.MustKubectl("create", "namespace", namespace)
	t.Logf("CRD installed, kube-controller-manager restarted in %s", time.Since(phase).Round(time.Millisecond))

	// The operator, out of cluster, everything on 127.0.0.1.
	op, err := kwok.StartOperator(kwok.OperatorOptions{Manager: manager, Kubeconfig: c.Kubeconfig, Log: filepath.Join(t.TempDir(), "manager.log")})
	require.NoError(t, err)
	// Registered after the cluster's cleanup, so it runs before it (LIFO).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("operator log tail (%s):\n%s", op.Log, op.LogTail(60))
		}
		if err := op.Stop(15 * time.Second); err != nil {
			t.Logf("operator (pid %d) exited: %v", op.PID, err)
		}
	})
	require.NoError(t, op.WaitReady(30*time.Second))
	reqStart, err := op.Requests()
	require.NoError(t, err)

	// The basic sample, as a user would apply it: no Secret, the operator generates them.
	phase = time.Now()
	c.MustKubectl("apply", "-n", namespace, "-f", filepath.Join(root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))

	podKey := client.ObjectKey{Namespace: namespace, Name: serverName + "-0"}
	kwok.Eventually(t, 60*time.Second, "pod "+podKey.String()+" Running and Ready", func() (bool, string) {
		pod := &corev1.Pod{}
		if err := k8s.Get(ctx, podKey, pod); err != nil {
			return false, err.Error()
		}
		ready := false
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		return pod.Status.Phase == corev1.PodRunning && ready, fmt.Sprintf("phase=%s ready=%v", pod.Status.Phase, ready)
	})
	dsKey := client.ObjectKey{Namespace: namespace, Name: serverName}
	kwok.Eventually(t, 60*time.Second, "DittoServer "+dsKey.String()+" Ready=True", func() (bool, string) {
		ds := &v1alpha1.DittoServer{}
		if err := k8s.Get(ctx, dsKey, ds); err != nil {
			return false, err.Error()
		}
		if meta.IsStatusConditionTrue(ds.Status.Conditions, "Ready") {
			return true, ""
		}
		if c := meta.FindStatusCondition(ds.Status.Conditions, "Ready"); c != nil {
			return false, fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
		}
		return false, "no Ready condition yet"
	})
	t.Logf("DittoServer Ready %s after apply", time.Since(phase).Round(time.Millisecond))
	if n, err := op.Requests(); err == nil {
		t.Logf("operator API requests: %d at startup, +%d from create to Ready", reqStart, n-reqStart)
	}

	// What the operator made.
	sts := &appsv1.StatefulSet{}
	require.NoError(t, k8s.Get(ctx, dsKey, sts))
	require.EqualValues(t, 1, sts.Status.ReadyReplicas)
	require.NotNil(t, sts.Spec.PersistentVolumeClaimRetentionPolicy)
	require.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	require.Equal(t, appsv1.RetainPersistentVolumeClaimRetentionPolicyType, sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled)
	owned := []client.Object{
		&appsv1.StatefulSet{},
		&corev1.ConfigMap{},
		&corev1.Service{}, &corev1.Service{}, &corev1.Service{},
		&networkingv1.NetworkPolicy{},
	}
	ownedNames := []string{serverName, serverName + "-config", serverName + "-headless", serverName + "-file", serverName + "-api", serverName}
	for i, obj := range owned {
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ownedNames[i]}, obj), ownedNames[i])
	}
	var claims []string
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		claims = append(claims, tpl.Name+"-"+serverName+"-0")
	}
	// The sample declares a content volume and no S3: the files go there, no cache volume.
	require.Equal(t, []string{"controlplane", "metadata", "content"}, templateNames(sts))
	kwok.Eventually(t, 30*time.Second, "PVCs Bound", func() (bool, string) {
		var notBound []string
		for _, name := range claims {
			pvc := &corev1.PersistentVolumeClaim{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pvc); err != nil || pvc.Status.Phase != corev1.ClaimBound {
				notBound = append(notBound, name)
			}
		}
		return len(notBound) == 0, "not bound: " + strings.Join(notBound, ", ")
	})

	// A larger volume, with the real garbage collector and StatefulSet controller: the PVC is
	// resized and the StatefulSet re-created without its pod, which keeps running (same UID).
	phase = time.Now()
	sc := &storagev1.StorageClass{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKey{Name: "standard"}, sc))
	sc.AllowVolumeExpansion = ptr.To(true)
	require.NoError(t, k8s.Update(ctx, sc))
	pod := &corev1.Pod{}
	require.NoError(t, k8s.Get(ctx, podKey, pod))
	ds := &v1alpha1.DittoServer{}
	require.NoError(t, k8s.Get(ctx, dsKey, ds))
	ds.Spec.Storage.MetadataSize = "20Gi"
	require.NoError(t, k8s.Update(ctx, ds))
	kwok.Eventually(t, 60*time.Second, "StatefulSet re-created with the 20Gi metadata template and Ready", func() (bool, string) {
		cur := &appsv1.StatefulSet{}
		if err := k8s.Get(ctx, dsKey, cur); err != nil {
			return false, err.Error()
		}
		size := ""
		for _, tpl := range cur.Spec.VolumeClaimTemplates {
			if tpl.Name == "metadata" {
				q := tpl.Spec.Resources.Requests[corev1.ResourceStorage]
				size = q.String()
			}
		}
		got := &v1alpha1.DittoServer{}
		if err := k8s.Get(ctx, dsKey, got); err != nil {
			return false, err.Error()
		}
		ready := meta.IsStatusConditionTrue(got.Status.Conditions, "Ready") && got.Status.ObservedGeneration == got.Generation
		return cur.UID != sts.UID && size == "20Gi" && ready, fmt.Sprintf("uid changed %v, metadata template %s, Ready %v", cur.UID != sts.UID, size, ready)
	})
	pvc := &corev1.PersistentVolumeClaim{}
	require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "metadata-" + serverName + "-0"}, pvc))
	q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	require.Equal(t, "20Gi", q.String(), "PVC resized")
	after := &corev1.Pod{}
	require.NoError(t, k8s.Get(ctx, podKey, after))
	require.Equal(t, pod.UID, after.UID, "the pod kept running")
	owner := metav1.GetControllerOf(after)
	require.NotNil(t, owner, "adopted by the new StatefulSet")
	require.NotEqual(t, sts.UID, owner.UID)
	t.Logf("volume expansion: Ready again %s after the size change", time.Since(phase).Round(time.Millisecond))

	// Delete the server: the owned objects are garbage-collected (by the real garbage
	// collector), the PVCs and the generated credentials that open them stay.
	phase = time.Now()
	require.NoError(t, k8s.Delete(ctx, &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serverName}}))
	kwok.Eventually(t, 30*time.Second, "DittoServer gone", func() (bool, string) {
		ds := &v1alpha1.DittoServer{}
		err := k8s.Get(ctx, dsKey, ds)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("err=%v finalizers=%v", err, ds.Finalizers)
	})
	owned = append(owned, &corev1.Pod{})
	ownedNames = append(ownedNames, serverName+"-0")
	kwok.Eventually(t, 60*time.Second, "StatefulSet, Pod, Services, ConfigMap and NetworkPolicy garbage-collected", func() (bool, string) {
		var left []string
		for i, obj := range owned {
			err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ownedNames[i]}, obj)
			if !apierrors.IsNotFound(err) {
				left = append(left, fmt.Sprintf("%T %s (err=%v)", obj, ownedNames[i], err))
			}
		}
		return len(left) == 0, "left: " + strings.Join(left, ", ")
	})
	t.Logf("owned objects garbage-collected %s after delete", time.Since(phase).Round(time.Millisecond))
	for _, name := range claims {
		pvc := &corev1.PersistentVolumeClaim{}
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pvc), "PVC %s must be kept", name)
		require.True(t, pvc.DeletionTimestamp.IsZero(), "PVC %s is being deleted", name)
	}
	for _, name := range []string{serverName + "-jwt-secret", serverName + "-admin-credentials"} {
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.Secret{}), "generated Secret %s must be kept with the data", name)
	}
	t.Logf("kept PVCs: %s", strings.Join(claims, ", "))
	t.Logf("e2e flow done in %s (before cleanup)", time.Since(start).Round(time.Millisecond))
}

func templateNames(sts *appsv1.StatefulSet) []string {
	var out []string
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		out = append(out, tpl.Name)
	}
	return out
}
