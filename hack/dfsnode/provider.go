package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1listers "k8s.io/client-go/listers/core/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// provider is virtual-kubelet's PodLifecycleHandler (and PodNotifier): it runs the pods.
type provider struct {
	cfg        config
	client     kubernetes.Interface
	configMaps corev1listers.ConfigMapLister
	secrets    corev1listers.SecretLister

	mu     sync.Mutex
	pods   map[string]*podRun // namespace/name
	ips    map[int]string     // last octet -> pod key
	notify func(*corev1.Pod)
}

func newProvider(cfg config, client kubernetes.Interface, pc nodeutil.ProviderConfig) *provider {
	return &provider{cfg: cfg, client: client, configMaps: pc.ConfigMaps, secrets: pc.Secrets,
		pods: map[string]*podRun{}, ips: map[int]string{}, notify: func(*corev1.Pod) {}}
}

func key(ns, name string) string { return ns + "/" + name }

// NotifyPods registers virtual-kubelet's callback for status changes.
func (p *provider) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notify = cb
}

func (p *provider) changed(r *podRun) {
	p.mu.Lock()
	cb := p.notify
	p.mu.Unlock()
	cb(r.snapshot())
}

// CreatePod starts the pod: its namespace, volumes and containers (asynchronously; the status
// tells how far it got).
func (p *provider) CreatePod(_ context.Context, pod *corev1.Pod) error {
	k := key(pod.Namespace, pod.Name)
	p.mu.Lock()
	if old, ok := p.pods[k]; ok && old.pod.UID == pod.UID {
		p.mu.Unlock()
		return nil
	}
	ip := ""
	for i := 2; i < 255; i++ {
		if _, used := p.ips[i]; !used {
			p.ips[i], ip = k, p.cfg.ipPrefix+"."+strconv.Itoa(i)
			break
		}
	}
	if ip == "" {
		p.mu.Unlock()
		return fmt.Errorf("no free pod IP in %s.2-254", p.cfg.ipPrefix)
	}
	r := newPodRun(p, pod.DeepCopy(), ip)
	p.pods[k] = r
	p.mu.Unlock()
	log.Printf("pod %s: created, IP %s", k, ip)
	go r.run()
	return nil
}

// UpdatePod keeps the new object (pods are immutable where it matters here).
func (p *provider) UpdatePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.pods[key(pod.Namespace, pod.Name)]; ok && r.pod.UID == pod.UID {
		r.setMeta(pod)
	}
	return nil
}

// DeletePod stops the pod as the kubelet does (preStop, SIGTERM, SIGKILL after the grace
// period) in the background; once its containers are gone it removes the pod from the API.
func (p *provider) DeletePod(_ context.Context, pod *corev1.Pod) error {
	p.mu.Lock()
	r, ok := p.pods[key(pod.Namespace, pod.Name)]
	p.mu.Unlock()
	if !ok || r.pod.UID != pod.UID {
		return errdefs.NotFound("pod not found")
	}
	grace := int64(30)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	go func() {
		r.terminate(time.Duration(grace) * time.Second)
		p.forget(r)
		// the kubelet's last word: the containers are gone, delete the object now
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		uid := r.pod.UID
		err := p.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			log.Printf("pod %s: final delete: %v", key(pod.Namespace, pod.Name), err)
		}
	}()
	return nil
}

func (p *provider) forget(r *podRun) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key(r.pod.Namespace, r.pod.Name)
	if cur, ok := p.pods[k]; ok && cur == r {
		delete(p.pods, k)
	}
	for i, owner := range p.ips {
		if owner == k && r.ip == p.cfg.ipPrefix+"."+strconv.Itoa(i) {
			delete(p.ips, i)
		}
	}
}

func (p *provider) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p.mu.Lock()
	r, ok := p.pods[key(namespace, name)]
	p.mu.Unlock()
	if !ok {
		return nil, errdefs.NotFound("pod not found")
	}
	return r.snapshot(), nil
}

func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(context.Context) ([]*corev1.Pod, error) {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.snapshot())
	}
	return out, nil
}

// stopAll stops every pod (dfsnode is shutting down): no grace beyond a short one.
func (p *provider) stopAll() {
	p.mu.Lock()
	runs := make([]*podRun, 0, len(p.pods))
	for _, r := range p.pods {
		runs = append(runs, r)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); r.terminate(5 * time.Second) }()
	}
	wg.Wait()
}

// cleanupStale kills the container processes a dfsnode killed with SIGKILL left behind (their
// PID files under --state-dir/pods) and removes the pods' directories.
func (p *provider) cleanupStale() {
	dirs, _ := filepath.Glob(filepath.Join(p.cfg.stateDir, "pods", "*"))
	for _, d := range dirs {
		pids, _ := filepath.Glob(filepath.Join(d, "*.pid"))
		for _, f := range pids {
			b, _ := os.ReadFile(f)
			fields := strings.Fields(string(b)) // "<pid> <start time>"
			if len(fields) == 2 {
				if pid, err := strconv.Atoi(fields[0]); err == nil && procStart(pid) == fields[1] {
					log.Printf("killing pid %d left by an earlier dfsnode (%s)", pid, f)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = os.RemoveAll(d) // the mounts were in the containers' mount namespaces, gone with them
	}
}

// The kubelet API (logs, exec, stats) is not served: logs are files under --state-dir/pods.

func (p *provider) GetContainerLogs(context.Context, string, string, string, api.ContainerLogOpts) (io.ReadCloser, error) {
	return nil, errdefs.InvalidInput("dfsnode serves no logs through the API: read " + p.cfg.stateDir + "/pods/<namespace>_<pod>/<container>.log")
}

func (p *provider) RunInContainer(context.Context, string, string, string, []string, api.AttachIO) error {
	return errdefs.InvalidInput("dfsnode does not exec into containers")
}

func (p *provider) AttachToContainer(context.Context, string, string, string, api.AttachIO) error {
	return errdefs.InvalidInput("dfsnode does not attach to containers")
}

func (p *provider) GetStatsSummary(context.Context) (*statsv1alpha1.Summary, error) {
	return nil, errdefs.InvalidInput("dfsnode has no stats")
}

func (p *provider) GetMetricsResource(context.Context) ([]*dto.MetricFamily, error) {
	return nil, errdefs.InvalidInput("dfsnode has no metrics")
}

func (p *provider) PortForward(context.Context, string, string, int32, io.ReadWriteCloser) error {
	return errdefs.InvalidInput("dfsnode does not port-forward: connect to the pod IP")
}
