// Command dfsnode is a Kubernetes node that runs real processes: a kubelet and container runtime
// stand-in for machines without either (this repository's e2e test and `make demo`). It is built
// on virtual-kubelet's node and pod controllers (github.com/virtual-kubelet/virtual-kubelet); its
// provider runs each container of a pod scheduled on the node as a local process, from a binary
// of this machine mapped to the container's command (--bin /app/dfs=bin/dittofs/v0.29.0/dfs).
//
// Each pod gets what a pod has, as far as its containers can tell:
//   - its own network namespace, reachable from this machine at a unique loopback address (the
//     pod IP in its status, --pod-ip-prefix.N): every declared TCP container port is forwarded
//     from <pod IP>:<port> into the namespace, so two pods may listen on the same port;
//   - its own mount namespace and root (the host's /usr, /lib, /etc, /bin read-only, /dev, /proc),
//     with its volumes at their mount paths: ConfigMap and Secret volumes as files, emptyDir as a
//     directory removed with the pod, each PersistentVolumeClaim as the hostPath directory of its
//     bound PersistentVolume (or a directory under --state-dir): it outlives the pod;
//   - its env resolved by virtual-kubelet (literal, secretKeyRef, configMapKeyRef, fieldRef,
//     envFrom), the user and groups of its security context, probes (httpGet, tcpSocket) run
//     against it to set Ready and restart it, the preStop sleep, SIGTERM then SIGKILL after the
//     grace period on delete, restarts with a backoff when a container exits.
//
// What it does not do is reported in the pod's status, never skipped silently: init containers,
// exec probes and hooks, subPath mounts, other volume types, and images whose command has no
// --bin mapping leave the container Waiting with reason CreateContainerConfigError and a message.
// Services have no virtual IPs (no kube-proxy): clients use the pod IP. --forward makes an
// address of this machine's loopback reachable from inside every pod (e.g. an S3 service a test
// runs on 127.0.0.1), as a Service's virtual IP would be.
//
// It needs root (namespaces, mounts). The node is tainted (--taint) so only pods that tolerate it
// land here; the other pods of the cluster stay on kwok's nodes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		kubeconfig, nodeName, stateDir, ipPrefix, taint string
		bins, forwards                                  listFlag
	)
	flag.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	flag.StringVar(&nodeName, "node-name", "dfs-node", "name of the Node")
	flag.StringVar(&stateDir, "state-dir", "", "directory for the pods' roots, volumes and logs (required)")
	flag.StringVar(&ipPrefix, "pod-ip-prefix", "127.0.1", "first three octets of the pods' loopback addresses (pods get .2 to .254); one per node on a machine")
	flag.StringVar(&taint, "taint", "dittofs.dittofs.com/dfs-node=true:NoSchedule", "taint of the Node (key=value:effect; empty for none)")
	flag.Var(&bins, "bin", "container command path=binary on this machine (repeatable), e.g. /app/dfs=bin/dittofs/v0.29.0/dfs")
	flag.Var(&forwards, "forward", "address inside every pod=address on this machine (repeatable), e.g. 10.96.0.50:9000=127.0.0.1:39123")
	flag.Parse()

	cfg, err := newConfig(nodeName, stateDir, ipPrefix, bins, forwards)
	if err != nil {
		log.Fatalf("dfsnode: %v", err)
	}
	if os.Geteuid() != 0 {
		log.Fatal("dfsnode: must run as root (each pod runs in its own network and mount namespace)")
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		log.Fatalf("dfsnode: --kubeconfig %q: %v", kubeconfig, err)
	}
	restCfg.QPS, restCfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		log.Fatalf("dfsnode: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, client, nodeName, ipPrefix, stateDir, taint)
	stop()
	if err != nil {
		log.Fatalf("dfsnode: %v", err)
	}
}

// run registers the node and runs its controllers until ctx ends, then stops every pod.
func run(ctx context.Context, cfg config, client kubernetes.Interface, nodeName, ipPrefix, stateDir, taint string) error {
	var p *provider
	n, err := nodeutil.NewNode(nodeName, func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
		p = newProvider(cfg, client, pc)
		if err := describeNode(pc.Node, taint); err != nil {
			return nil, nil, err
		}
		return p, nil, nil
	}, nodeutil.WithClient(client), func(c *nodeutil.NodeConfig) error {
		c.NumWorkers = 4
		c.HTTPListenAddr = "127.0.0.1:0" // no kubelet API is served (no TLS config): logs are files
		return nil
	})
	if err != nil {
		return err
	}
	p.cleanupStale()
	go func() {
		if err := n.WaitReady(ctx, time.Minute); err != nil {
			log.Printf("dfsnode: node %s not ready: %v", nodeName, err)
			return
		}
		log.Printf("dfsnode: node %s ready (pods at %s.2-254, state in %s)", nodeName, ipPrefix, stateDir)
	}()
	err = n.Run(ctx)
	log.Printf("dfsnode: stopping every pod")
	p.stopAll()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// describeNode sets what the scheduler and kubectl see: capacity, address, labels, taint.
func describeNode(n *corev1.Node, taint string) error {
	n.Labels["dittofs.dittofs.com/dfs-node"] = "true"
	n.Labels["kubernetes.io/os"] = "linux"
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("250"),
	}
	n.Status.Capacity, n.Status.Allocatable = capacity, capacity
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: n.Name}}
	n.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "dfsnode", ContainerRuntimeVersion: "dfsnode://local-process"}
	if taint == "" {
		return nil
	}
	kv, effect, ok := strings.Cut(taint, ":")
	k, v, _ := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("--taint %q: want key=value:effect", taint)
	}
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	return nil
}

// config is what the flags say.
type config struct {
	nodeName, stateDir, ipPrefix string
	bins                         map[string]string // container path -> host binary
	forwards                     []forward
}

// forward makes host (an address of this machine) reachable at pod (inside every pod).
type forward struct{ pod, host string }

func newConfig(nodeName, stateDir, ipPrefix string, bins, forwards []string) (config, error) {
	c := config{nodeName: nodeName, stateDir: stateDir, ipPrefix: ipPrefix, bins: map[string]string{}}
	if stateDir == "" {
		return c, fmt.Errorf("--state-dir is required")
	}
	if ip := net.ParseIP(ipPrefix + ".1"); ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return c, fmt.Errorf("--pod-ip-prefix %q: want three octets of 127.0.0.0/8, e.g. 127.0.1", ipPrefix)
	}
	for _, b := range bins {
		in, host, ok := strings.Cut(b, "=")
		if !ok || !strings.HasPrefix(in, "/") {
			return c, fmt.Errorf("--bin %q: want /container/path=binary", b)
		}
		if st, err := os.Stat(host); err != nil || st.IsDir() {
			return c, fmt.Errorf("--bin %q: %s is not a file", b, host)
		}
		c.bins[in] = host
	}
	for _, f := range forwards {
		in, host, ok := strings.Cut(f, "=")
		if _, _, err := net.SplitHostPort(in); !ok || err != nil {
			return c, fmt.Errorf("--forward %q: want podIP:port=hostIP:port", f)
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			return c, fmt.Errorf("--forward %q: want podIP:port=hostIP:port", f)
		}
		c.forwards = append(c.forwards, forward{pod: in, host: host})
	}
	return c, os.MkdirAll(stateDir, 0o755)
}
