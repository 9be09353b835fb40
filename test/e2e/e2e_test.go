// Package e2e runs the operator binary against a local kwok cluster (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd and kwok, built by hack/build-k8s.sh; started by
// hack/kwok-cluster.sh). Pods are only reported Running by kwok: the test covers what the operator
// and the Kubernetes controllers do (objects, status, PVC binding, garbage collection), not DittoFS.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

const (
	namespace  = "dittofs"
	serverName = "dittoserver-sample" // config/samples/dittofs_v1alpha1_dittoserver.yaml
	tick       = 200 * time.Millisecond
)

var k8sBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kwokctl"}

// cluster is a kwok cluster started by hack/kwok-cluster.sh.
type cluster struct {
	t          *testing.T
	root, name string
	kubectl    string
	kubeconfig string
}

func (c *cluster) script(args ...string) string {
	c.t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(c.root, "hack", "kwok-cluster.sh")}, args...)...)
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "KWOK_CLUSTER="+c.name)
	out, err := cmd.CombinedOutput()
	require.NoError(c.t, err, "hack/kwok-cluster.sh %s:\n%s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

func (c *cluster) kubectlRun(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Dir = c.root
	out, err := cmd.CombinedOutput()
	require.NoError(c.t, err, "kubectl %s:\n%s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// operator is bin/manager running as a subprocess.
type operator struct {
	cmd         *exec.Cmd
	log         string
	metricsPort int
	done        chan error
}

// stop terminates the operator by its PID (SIGTERM, then SIGKILL after 15 s).
func (o *operator) stop(t *testing.T) {
	if o.cmd.Process == nil {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-o.done:
	case <-time.After(15 * time.Second):
		t.Logf("operator (pid %d) did not stop on SIGTERM, killing it", o.cmd.Process.Pid)
		_ = o.cmd.Process.Kill()
		err = <-o.done
	}
	if err != nil {
		t.Logf("operator (pid %d) exited: %v", o.cmd.Process.Pid, err)
	}
}

func (o *operator) logTail(n int) string {
	data, err := os.ReadFile(o.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// requests is the operator's rest_client_requests_total, summed over all labels.
func (o *operator) requests() (int, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", o.metricsPort))
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		total += int(v)
	}
	return total, sc.Err()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// eventually polls cond until it returns true or the timeout passes; on timeout it fails with
// the last state cond described.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, last)
		}
		time.Sleep(tick)
	}
}

func TestOperatorOnKwok(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	start := time.Now()
	root, err := filepath.Abs(apiserver.RepoRoot())
	require.NoError(t, err)
	bindir := filepath.Join(root, "bin", "k8s", apiserver.K8sVersion)
	for _, b := range k8sBinaries {
		if _, err := os.Stat(filepath.Join(bindir, b)); err != nil {
			t.Skipf("e2e: %s is missing: build the Kubernetes test binaries first with `bash hack/build-k8s.sh` (make k8s-binaries)", filepath.Join(bindir, b))
		}
	}

	// The operator binary as make build (and the image) builds it; a no-op when up to date.
	phase := time.Now()
	manager := filepath.Join(root, "bin", "manager")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", manager, ".")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building bin/manager:\n%s", out)
	t.Logf("bin/manager ready in %s", time.Since(phase).Round(time.Millisecond))

	// The cluster, deleted at the end whatever happens.
	c := &cluster{
		t: t, root: root, name: fmt.Sprintf("dittofs-e2e-%d", os.Getpid()),
		kubectl: filepath.Join(bindir, "kubectl"),
	}
	t.Cleanup(func() {
		phase := time.Now()
		cmd := exec.Command("bash", filepath.Join(root, "hack", "kwok-cluster.sh"), "down")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KWOK_CLUSTER="+c.name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("deleting cluster %s: %v\n%s", c.name, err, out)
		}
		t.Logf("cluster %s deleted in %s", c.name, time.Since(phase).Round(time.Millisecond))
	})
	phase = time.Now()
	c.script("up")
	c.kubeconfig = c.script("kubeconfig")
	t.Logf("cluster %s up in %s", c.name, time.Since(phase).Round(time.Millisecond))

	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	require.NoError(t, err)
	k8s, err := client.New(cfg, client.Options{Scheme: apiserver.Scheme()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// CRD; then restart the controller-manager so its garbage collector knows DittoServer at once.
	phase = time.Now()
	c.kubectlRun("apply", "--server-side", "--force-conflicts", "-f", filepath.Join(root, "config", "crd", "bases"))
	// Poll rather than `kubectl wait`, which fails outright when it reads the CRD before the API
	// server has written any status condition.
	testenv.Eventually(t, "CRD Established", func() error {
		out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "get", "crd", "dittoservers.dittofs.dittofs.com",
			"-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "True" {
			return fmt.Errorf("not established yet: %w (%s)", err, out)
		}
		return nil
	})
	c.script("restart-kcm")
	c.kubectlRun("create", "namespace", namespace)
	t.Logf("CRD installed, kube-controller-manager restarted in %s", time.Since(phase).Round(time.Millisecond))

	// The operator, out of cluster, everything on 127.0.0.1.
	op := &operator{log: filepath.Join(t.TempDir(), "manager.log"), metricsPort: freePort(t), done: make(chan error, 1)}
	logFile, err := os.Create(op.log)
	require.NoError(t, err)
	defer func() { _ = logFile.Close() }()
	op.cmd = exec.Command(manager,
		"--kubeconfig", c.kubeconfig,
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", op.metricsPort), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	)
	op.cmd.Stdout, op.cmd.Stderr = logFile, logFile
	require.NoError(t, op.cmd.Start())
	go func() { op.done <- op.cmd.Wait() }()
	// Registered after the cluster's cleanup, so it runs before it (LIFO).
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("operator log tail (%s):\n%s", op.log, op.logTail(60))
		}
		op.stop(t)
	})
	eventually(t, 30*time.Second, "the operator's metrics endpoint", func() (bool, string) {
		select {
		case err := <-op.done:
			op.done <- err
			t.Fatalf("the operator exited: %v\n%s", err, op.logTail(40))
		default:
		}
		_, err := op.requests()
		return err == nil, fmt.Sprint(err)
	})
	reqStart, err := op.requests()
	require.NoError(t, err)

	// The basic sample and its Secrets, as a user would apply them.
	phase = time.Now()
	c.kubectlRun("apply", "-n", namespace, "-f", filepath.Join(root, "config", "samples", "dittofs_secrets.yaml"))
	c.kubectlRun("apply", "-n", namespace, "-f", filepath.Join(root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))

	podKey := client.ObjectKey{Namespace: namespace, Name: serverName + "-0"}
	eventually(t, 60*time.Second, "pod "+podKey.String()+" Running and Ready", func() (bool, string) {
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
	eventually(t, 60*time.Second, "DittoServer "+dsKey.String()+" Ready=True", func() (bool, string) {
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
	if n, err := op.requests(); err == nil {
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
	}
	ownedNames := []string{serverName, serverName + "-config", serverName + "-headless", serverName + "-file", serverName + "-api"}
	for i, obj := range owned {
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: ownedNames[i]}, obj), ownedNames[i])
	}
	var claims []string
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		claims = append(claims, tpl.Name+"-"+serverName+"-0")
	}
	require.Subset(t, templateNames(sts), []string{"controlplane", "metadata", "cache"})
	eventually(t, 30*time.Second, "PVCs Bound", func() (bool, string) {
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
	eventually(t, 60*time.Second, "StatefulSet re-created with the 20Gi metadata template and Ready", func() (bool, string) {
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

	// Delete the server: the owned objects are garbage-collected, the PVCs and the user's
	// Secrets stay.
	phase = time.Now()
	require.NoError(t, k8s.Delete(ctx, &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serverName}}))
	eventually(t, 30*time.Second, "DittoServer gone", func() (bool, string) {
		ds := &v1alpha1.DittoServer{}
		err := k8s.Get(ctx, dsKey, ds)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("err=%v finalizers=%v", err, ds.Finalizers)
	})
	owned = append(owned, &corev1.Pod{})
	ownedNames = append(ownedNames, serverName+"-0")
	eventually(t, 60*time.Second, "StatefulSet, Pod, Services and ConfigMap garbage-collected", func() (bool, string) {
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
	for _, name := range []string{"dittofs-jwt-secret", "dittofs-admin-secret"} {
		require.NoError(t, k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &corev1.Secret{}), "user Secret %s must be kept", name)
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
