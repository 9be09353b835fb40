// Package e2e runs the operator binary against a local cluster (kube-apiserver,
// kube-controller-manager with its garbage collector and StatefulSet controller, kube-scheduler,
// etcd and kwok, built by hack/build-k8s.sh; started by hack/kwok-cluster.sh) with one node that
// runs pods for real: hack/dfsnode, a virtual-kubelet node whose pods are real DittoFS v0.29.0
// processes. The test uses the servers as a client would: files written over NFS and SMB, read
// back byte for byte through the other protocol, across a pod restart, a spec change, a volume
// expansion and the deletion and re-creation of the DittoServer.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/dittoapi"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/apiserver"
	"github.com/dittofs/dittofs-operator/test/fileclient"
	"github.com/dittofs/dittofs-operator/test/kwok"
	"github.com/dittofs/dittofs-operator/test/prometheus"
)

const (
	namespace  = "dittofs"
	serverName = "dittoserver-sample" // config/samples/dittofs_v1alpha1_dittoserver.yaml
	s3Server   = "files-s3"
	bucket     = "ditto-e2e"
	// s3Addr is where the pods reach the S3 service the test runs on 127.0.0.1 (dfsnode
	// --forward): a private address, as an S3 service inside a cluster has.
	s3Addr = "10.96.0.50:9000"
)

// e2e is the running test: the cluster, its clients and the dfsnode.
type e2e struct {
	t    *testing.T
	c    *kwok.Cluster
	k8s  client.Client
	ctx  context.Context
	node kwok.DFSNodeOptions
}

func TestOperatorOnKwok(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode")
	}
	start := time.Now()
	// The cluster, deleted at the end whatever happens.
	c := kwok.NewCluster(t, fmt.Sprintf("dittofs-e2e-%d", os.Getpid()))
	root := c.Root
	if os.Geteuid() != 0 {
		t.Skip("the e2e runs DittoFS pods on hack/dfsnode, which needs root (namespaces, mounts)")
	}

	// The operator binary as make build (and the image) builds it, and the dfsnode; no-ops when
	// up to date.
	phase := time.Now()
	manager := kwok.BuildManager(t, root)
	dfsnode := kwok.BuildDFSNode(t, root)
	t.Logf("bin/manager and bin/dfsnode ready in %s", time.Since(phase).Round(time.Millisecond))

	phase = time.Now()
	c.Up()
	t.Logf("cluster %s up in %s", c.Name, time.Since(phase).Round(time.Millisecond))
	_, k8s := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e := &e2e{t: t, c: c, k8s: k8s, ctx: ctx}

	// S3 (gofakes3 on 127.0.0.1), reached from the pods at s3Addr; the node that runs DittoFS.
	s3 := startS3(t, root)
	state := t.TempDir()
	e.node = kwok.DFSNodeOptions{Binary: dfsnode, Kubeconfig: c.Kubeconfig, StateDir: filepath.Join(state, "dfsnode"),
		PodIPPrefix: kwok.PodIPPrefix(), Forwards: []string{s3Addr + "=" + s3.addr}, Log: filepath.Join(state, "dfsnode.log")}
	kwok.StartDFSNode(t, root, e.node)
	t.Cleanup(func() {
		if t.Failed() {
			for _, pod := range []string{serverName + "-0", s3Server + "-0"} {
				if b, err := os.ReadFile(e.node.PodLog(namespace, pod, "dittofs")); err == nil {
					t.Logf("log of %s (last 3000 bytes):\n%s", pod, lastBytes(b, 3000))
				}
			}
		}
	})
	kwok.Eventually(t, 60*time.Second, "Node "+kwok.DFSNodeName+" Ready", func() (bool, string) {
		n := &corev1.Node{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: kwok.DFSNodeName}, n); err != nil {
			return false, err.Error()
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, "not Ready"
	})

	// CRD; then restart the controller-manager so its garbage collector knows DittoServer at once.
	phase = time.Now()
	c.InstallCRDs([]string{"dittoservers.dittofs.dittofs.com"}, filepath.Join(root, "config", "crd", "bases"))
	c.MustKubectl("create", "namespace", namespace)
	t.Logf("CRD installed, kube-controller-manager restarted in %s", time.Since(phase).Round(time.Millisecond))

	// The operator, out of cluster without cluster DNS: it reaches each server at its pod IP.
	op, err := kwok.StartOperator(kwok.OperatorOptions{Manager: manager, Kubeconfig: c.Kubeconfig,
		Log: filepath.Join(state, "manager.log"), Args: []string{"--dittofs-api-address=pod-ip"}})
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

	// The basic sample, as a user would apply it (no Secret: the operator generates them), placed
	// on the dfsnode; and a server with SMB and its blocks in S3.
	phase = time.Now()
	sample := e.sample()
	require.NoError(t, k8s.Create(ctx, sample))
	require.NoError(t, k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: namespace},
		StringData: map[string]string{"accessKeyId": "AKIAE2E", "secretAccessKey": "e2e-secret", "endpoint": "http://" + s3Addr},
	}))
	require.NoError(t, k8s.Create(ctx, e.s3Server()))
	e.waitReady(serverName, 90*time.Second)
	t.Logf("DittoServer %s Ready (its API applied, through the pod IP) %s after create", serverName, time.Since(phase).Round(time.Millisecond))
	if n, err := op.Requests(); err == nil {
		t.Logf("operator API requests: %d at startup, +%d from create to Ready", reqStart, n-reqStart)
	}
	e.waitReady(s3Server, 90*time.Second)
	t.Logf("DittoServer %s Ready %s after create", s3Server, time.Since(phase).Round(time.Millisecond))

	// What the operator made.
	dsKey := client.ObjectKey{Namespace: namespace, Name: serverName}
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
	pod := e.pod(serverName)
	require.Equal(t, kwok.DFSNodeName, pod.Spec.NodeName)

	// NFS on the sample: its share is read-only for clients without a grant (the default)
	// until the spec says read-write; then write, read back.
	hello := []byte("hello from the e2e, over NFS\n")
	nfs := e.addr(serverName, specs.NFSAdapterPort)
	require.Error(t, fileclient.WriteNFS(nfs, specs.DefaultShareName, "hello.txt", hello), "the default share refuses writes without a grant")
	e.update(serverName, func(ds *v1alpha1.DittoServer) {
		ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: specs.DefaultShareName, DefaultPermission: "read-write"}}
	})
	require.Eventually(t, func() bool { return fileclient.WriteNFS(nfs, specs.DefaultShareName, "hello.txt", hello) == nil },
		30*time.Second, 200*time.Millisecond, "writable once spec.shares says read-write")
	e.requireNFS(serverName, "hello.txt", hello)
	t.Logf("NFS: %d bytes written and read back at %s:%s", len(hello), nfs, specs.DefaultShareName)

	// SMB and NFS on the S3 server, each reading what the other wrote, as the admin user.
	password := e.adminPassword(s3Server)
	viaSMB, viaNFS := randomBytes(t, 3<<20), randomBytes(t, 1<<20)
	require.NoError(t, fileclient.WriteSMB(e.addr(s3Server, specs.SMBAdapterPort), specs.DefaultAdminUser, password, specs.DefaultShareName, "via-smb.bin", viaSMB))
	require.NoError(t, fileclient.WriteNFS(e.addr(s3Server, specs.NFSAdapterPort), specs.DefaultShareName, "via-nfs.bin", viaNFS))
	e.requireNFS(s3Server, "via-smb.bin", viaSMB)
	e.requireSMB(s3Server, password, "via-nfs.bin", viaNFS)
	t.Logf("SMB and NFS: %d and %d bytes written, each read back through the other protocol", len(viaSMB), len(viaNFS))
	// An SMB user made as docs/CLIENTS.md says: dfsctl against the API, then a share grant.
	dfsctl := e.dfsctl(s3Server, password)
	dfsctl("user", "create", "--username", "alice", "--password", "alice-e2e-password")
	dfsctl("share", "permission", "grant", specs.DefaultShareName, "--user", "alice", "--level", "read-write")
	byAlice := []byte("alice was here, over SMB\n")
	require.NoError(t, fileclient.WriteSMB(e.addr(s3Server, specs.SMBAdapterPort), "alice", "alice-e2e-password", specs.DefaultShareName, "alice.txt", byAlice))
	e.requireNFS(s3Server, "alice.txt", byAlice)
	t.Logf("SMB as a user made with dfsctl: written, read back over NFS")
	kwok.Eventually(t, 90*time.Second, "file blocks uploaded to the S3 bucket", func() (bool, string) {
		n, size, err := s3.objects(bucket)
		if err != nil {
			return false, err.Error()
		}
		return size >= int64(len(viaSMB)+len(viaNFS)), fmt.Sprintf("%d objects, %d bytes", n, size)
	})

	// The metrics the shipped alerts and dashboard query exist: this server's, after file
	// traffic and uploads, and the operator's (a renamed metric fails here).
	dfsMetrics := e.get(fmt.Sprintf("http://%s/metrics", e.addr(s3Server, int(v1alpha1.DefaultMetricsPort))))
	opMetrics := e.get(fmt.Sprintf("http://127.0.0.1:%d/metrics", op.MetricsPort))
	referenced, err := prometheus.ReferencedMetrics(root)
	require.NoError(t, err)
	require.Empty(t, prometheus.Missing(referenced, dfsMetrics+"\n"+opMetrics),
		"metrics used by config/prometheus or config/grafana that neither DittoFS nor the operator exports")
	t.Logf("alerts and dashboard: %d metric families, all exported (or from %d external exporters' metrics)", len(referenced), len(prometheus.External))

	// Restart: the pod deleted, the StatefulSet makes a new one; the files and the admin
	// password are the same.
	phase = time.Now()
	old := e.pod(s3Server)
	require.NoError(t, k8s.Delete(ctx, old))
	kwok.Eventually(t, 90*time.Second, "a new pod "+s3Server+"-0 Ready", func() (bool, string) {
		p := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s3Server + "-0"}, p); err != nil {
			return false, err.Error()
		}
		return p.UID != old.UID && podReady(p), fmt.Sprintf("uid changed %v, ready %v", p.UID != old.UID, podReady(p))
	})
	e.waitReady(s3Server, 60*time.Second)
	e.requireSMB(s3Server, password, "via-smb.bin", viaSMB)
	e.requireNFS(s3Server, "via-nfs.bin", viaNFS)
	e.login(s3Server, password)
	t.Logf("pod restart: Ready again %s after the delete, files and admin password unchanged", time.Since(phase).Round(time.Millisecond))

	// A spec change reaches the running server.
	phase = time.Now()
	e.update(s3Server, func(ds *v1alpha1.DittoServer) { ds.Spec.SMB.MaxConnections = ptr.To(int32(33)) })
	kwok.Eventually(t, 60*time.Second, "SMB max_connections 33 on the server", func() (bool, string) {
		set, err := e.login(s3Server, password).GetAdapterSettings(ctx, "smb")
		if err != nil {
			return false, err.Error()
		}
		return fmt.Sprint(set["max_connections"]) == "33", fmt.Sprintf("max_connections=%v", set["max_connections"])
	})
	e.waitReady(s3Server, 60*time.Second)
	t.Logf("spec change: SMB max connections applied %s after the update", time.Since(phase).Round(time.Millisecond))

	// A larger volume, with the real garbage collector and StatefulSet controller: the PVC is
	// resized and the StatefulSet re-created without its pod, which keeps running (same UID)
	// and serving.
	phase = time.Now()
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc := &storagev1.StorageClass{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: "standard"}, sc); err != nil {
			return err
		}
		sc.AllowVolumeExpansion = ptr.To(true)
		return k8s.Update(ctx, sc)
	}))
	pod = e.pod(serverName)
	e.update(serverName, func(ds *v1alpha1.DittoServer) { ds.Spec.Storage.MetadataSize = "20Gi" })
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
	after := e.pod(serverName)
	require.Equal(t, pod.UID, after.UID, "the pod kept running")
	owner := metav1.GetControllerOf(after)
	require.NotNil(t, owner, "adopted by the new StatefulSet")
	require.NotEqual(t, sts.UID, owner.UID)
	e.requireNFS(serverName, "hello.txt", hello)
	t.Logf("volume expansion: Ready again %s after the size change, still serving", time.Since(phase).Round(time.Millisecond))

	// Delete the server: the owned objects are garbage-collected (by the real garbage
	// collector), the PVCs and the generated credentials that open them stay.
	phase = time.Now()
	samplePassword := e.adminPassword(serverName)
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
	kwok.Eventually(t, 90*time.Second, "StatefulSet, Pod, Services, ConfigMap and NetworkPolicy garbage-collected", func() (bool, string) {
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

	// Re-create it: it adopts the kept volumes and credentials; the file is there and the admin
	// password is the one it had.
	phase = time.Now()
	again := e.sample()
	again.Spec.Storage.MetadataSize = "20Gi"
	require.NoError(t, k8s.Create(ctx, again))
	e.waitReady(serverName, 90*time.Second)
	require.Equal(t, samplePassword, e.adminPassword(serverName), "the re-created server keeps its admin password")
	e.login(serverName, samplePassword)
	e.requireNFS(serverName, "hello.txt", hello)
	t.Logf("re-created: Ready %s after create, file and admin password kept", time.Since(phase).Round(time.Millisecond))
	t.Logf("e2e flow done in %s (before cleanup)", time.Since(start).Round(time.Millisecond))
}

// sample is config/samples/dittofs_v1alpha1_dittoserver.yaml placed on the dfsnode.
func (e *e2e) sample() *v1alpha1.DittoServer {
	b, err := os.ReadFile(filepath.Join(e.c.Root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))
	require.NoError(e.t, err)
	ds := &v1alpha1.DittoServer{}
	require.NoError(e.t, yaml.UnmarshalStrict(b, ds))
	require.Equal(e.t, serverName, ds.Name)
	ds.Namespace = namespace
	ds.Spec.NodeSelector, ds.Spec.Tolerations = kwok.OnDFSNode()
	return ds
}

// s3Server is a server with SMB and its file blocks in the S3 bucket.
func (e *e2e) s3Server() *v1alpha1.DittoServer {
	ds := &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: s3Server, Namespace: namespace}}
	ds.Spec.Storage.MetadataSize = "1Gi"
	ds.Spec.SMB = &v1alpha1.SMBSpec{Enabled: true, MaxConnections: ptr.To(int32(20))}
	ds.Spec.Metrics = &v1alpha1.MetricsSpec{Enabled: ptr.To(true)}
	ds.Spec.Shares = []v1alpha1.ShareSpec{{Name: specs.DefaultShareName, DefaultPermission: "read-write"}}
	ds.Spec.S3 = &v1alpha1.S3Spec{Bucket: bucket, Region: "us-east-1", AllowPrivateEndpoint: true,
		CredentialsSecretRef: &v1alpha1.S3CredentialsSecretRef{SecretName: "s3"}}
	ds.Spec.NodeSelector, ds.Spec.Tolerations = kwok.OnDFSNode()
	return ds
}

// waitReady waits for Ready=True on the current generation.
func (e *e2e) waitReady(name string, timeout time.Duration) *v1alpha1.DittoServer {
	e.t.Helper()
	var ds *v1alpha1.DittoServer
	kwok.Eventually(e.t, timeout, "DittoServer "+name+" Ready=True", func() (bool, string) {
		ds = &v1alpha1.DittoServer{}
		if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: name}, ds); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(ds.Status.Conditions, "Ready")
		if c == nil {
			return false, "no Ready condition yet"
		}
		return c.Status == metav1.ConditionTrue && ds.Status.ObservedGeneration == ds.Generation,
			fmt.Sprintf("Ready=%s %s: %s (generation %d observed %d)", c.Status, c.Reason, c.Message, ds.Generation, ds.Status.ObservedGeneration)
	})
	return ds
}

// update changes a server's spec, again on a conflict with the operator's status writes.
func (e *e2e) update(name string, mutate func(*v1alpha1.DittoServer)) {
	e.t.Helper()
	require.NoError(e.t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds := &v1alpha1.DittoServer{}
		if err := e.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: name}, ds); err != nil {
			return err
		}
		mutate(ds)
		return e.k8s.Update(e.ctx, ds)
	}))
}

func (e *e2e) pod(server string) *corev1.Pod {
	e.t.Helper()
	p := &corev1.Pod{}
	require.NoError(e.t, e.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: server + "-0"}, p))
	return p
}

// addr is the pod IP and a container port: how a client reaches the server here (no kube-proxy).
func (e *e2e) addr(server string, port int) string {
	e.t.Helper()
	p := e.pod(server)
	require.NotEmpty(e.t, p.Status.PodIP, "pod %s has no IP", p.Name)
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port))
}

func (e *e2e) adminPassword(server string) string {
	e.t.Helper()
	s := &corev1.Secret{}
	require.NoError(e.t, e.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: server + "-admin-credentials"}, s))
	require.NotEmpty(e.t, s.Data[specs.AdminPasswordKey])
	return string(s.Data[specs.AdminPasswordKey])
}

// apiCA is the CA of the server's API certificate, from the Secret the operator made
// (<name>-api-tls, key ca.crt), as docs/CLIENTS.md tells users to read it.
func (e *e2e) apiCA(server string) []byte {
	e.t.Helper()
	s := &corev1.Secret{}
	require.NoError(e.t, e.k8s.Get(e.ctx, client.ObjectKey{Namespace: namespace, Name: server + "-api-tls"}, s))
	require.NotEmpty(e.t, s.Data[specs.APITLSCAKey])
	return s.Data[specs.APITLSCAKey]
}

// login logs in to the server's REST API as the admin, over HTTPS, verifying the server's
// certificate with its CA under the name <name>-api.<namespace>.svc (the test dials the pod IP).
func (e *e2e) login(server, password string) *dittoapi.Client {
	e.t.Helper()
	roots := x509.NewCertPool()
	require.True(e.t, roots.AppendCertsFromPEM(e.apiCA(server)))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, ServerName: server + "-api." + namespace + ".svc", MinVersion: tls.VersionTLS12}
	api := dittoapi.New("https://"+e.addr(server, 8080), &http.Client{Transport: tr, Timeout: 10 * time.Second})
	_, err := api.Login(e.ctx, specs.DefaultAdminUser, password)
	require.NoError(e.t, err, "admin login on %s", server)
	return api
}

// get is the body of a GET that must answer 200.
func (e *e2e) get(url string) string {
	e.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	require.NoError(e.t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return string(b)
}

// dfsctl logs dfsctl (bin/dittofs/<version>/dfsctl) in to the server's API as the admin and
// returns a function that runs one of its commands (its config in a temporary HOME).
func (e *e2e) dfsctl(server, password string) func(args ...string) {
	e.t.Helper()
	bin := filepath.Join(e.c.Root, "bin", "dittofs", apiserver.DittoFSVersion, "dfsctl")
	home := e.t.TempDir()
	run := func(args ...string) {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
		out, err := cmd.CombinedOutput()
		require.NoError(e.t, err, "dfsctl %s:\n%s", strings.Join(args, " "), out)
	}
	// As docs/CLIENTS.md says: kubectl port-forward to the API, trust ca.crt, use localhost.
	ca := filepath.Join(home, "ca.crt")
	require.NoError(e.t, os.WriteFile(ca, e.apiCA(server), 0o600))
	local := e.portForward(e.addr(server, 8080))
	run("login", "--server", "https://"+local, "--cacert", ca, "--username", specs.DefaultAdminUser, "--password", password)
	return run
}

// portForward is kubectl port-forward's part here: localhost:<free port> to addr, until the
// test ends. It returns localhost:<port>.
func (e *e2e) portForward(addr string) string {
	e.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = in.Close() }()
				out, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return
				}
				defer func() { _ = out.Close() }()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return fmt.Sprintf("localhost:%d", l.Addr().(*net.TCPAddr).Port)
}

func (e *e2e) requireNFS(server, name string, want []byte) {
	e.t.Helper()
	got, err := fileclient.ReadNFS(e.addr(server, specs.NFSAdapterPort), specs.DefaultShareName, name)
	require.NoError(e.t, err)
	require.True(e.t, bytes.Equal(want, got), "%s over NFS: read %d bytes that differ from the %d written", name, len(got), len(want))
}

func (e *e2e) requireSMB(server, password, name string, want []byte) {
	e.t.Helper()
	got, err := fileclient.ReadSMB(e.addr(server, specs.SMBAdapterPort), specs.DefaultAdminUser, password, specs.DefaultShareName, name)
	require.NoError(e.t, err)
	require.True(e.t, bytes.Equal(want, got), "%s over SMB: read %d bytes that differ from the %d written", name, len(got), len(want))
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func templateNames(sts *appsv1.StatefulSet) []string {
	var out []string
	for _, tpl := range sts.Spec.VolumeClaimTemplates {
		out = append(out, tpl.Name)
	}
	return out
}

// s3Service is gofakes3 (bin/tools/gofakes3-v1.2.0, built by make test) on 127.0.0.1.
type s3Service struct{ addr string }

func startS3(t *testing.T, root string) *s3Service {
	t.Helper()
	bin := filepath.Join(root, "bin", "tools", "gofakes3-v1.2.0")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("gofakes3 missing (%s): run make test", bin)
	}
	port, err := kwok.FreePort()
	require.NoError(t, err)
	s := &s3Service{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	cmd := exec.Command(bin, "-backend", "memory", "-initialbucket", bucket, "-host", s.addr)
	log, err := os.Create(filepath.Join(t.TempDir(), "gofakes3.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	kwok.Eventually(t, 10*time.Second, "gofakes3 listening", func() (bool, string) {
		resp, err := http.Get("http://" + s.addr + "/")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return true, ""
	})
	return s
}

// objects counts the bucket's objects and their bytes.
func (s *s3Service) objects(bucket string) (int, int64, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.addr + "/" + bucket + "?list-type=2")
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var res struct {
		Contents []struct {
			Key  string
			Size int64
		}
	}
	if err := xml.NewDecoder(resp.Body).Decode(&res); err != nil {
		return 0, 0, err
	}
	var size int64
	for _, c := range res.Contents {
		size += c.Size
	}
	return len(res.Contents), size, nil
}
