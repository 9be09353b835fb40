package kwok

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/dittofs/dittofs-operator/test/testenv"
)

// Control-plane components come back as on a real cluster. A listener that takes a component's
// port while it is down makes the restarted one exit ("address already in use"); RestartAPIServer
// and RestartKCM start it again once the port is free. kube-scheduler, which exits by itself when
// its cache turns inconsistent, is started again by the cluster's supervision. One cluster serves
// every case.
func TestComponentRestarts(t *testing.T) {
	c := NewCluster(t, "kwok-restart")
	c.Up()

	t.Run("kube-apiserver", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		require.NoError(t, err)
		u, err := url.Parse(cfg.Host)
		require.NoError(t, err)
		met := holdPortWhenFree(u.Host, c.componentLog("kube-apiserver"))
		unavailable, err := c.RestartAPIServer(60 * time.Second)
		require.NoError(t, err)
		require.NoError(t, <-met)
		t.Logf("kube-apiserver serving again after %s", unavailable.Round(time.Millisecond))
	})

	t.Run("kube-controller-manager", func(t *testing.T) {
		_, args, _, err := c.componentCommand("kube-controller-manager")
		require.NoError(t, err)
		port := ""
		for _, a := range args {
			if p, ok := strings.CutPrefix(a, "--secure-port="); ok {
				port = p
			}
		}
		require.NotEmpty(t, port, "kube-controller-manager runs without --secure-port")
		met := holdPortWhenFree("127.0.0.1:"+port, c.componentLog("kube-controller-manager"))
		start := time.Now()
		require.NoError(t, c.RestartKCM())
		require.NoError(t, <-met)
		newPID, err := c.ComponentPID("kube-controller-manager")
		require.NoError(t, err)
		require.True(t, running(newPID), "the pid file names no running kube-controller-manager")
		t.Logf("kube-controller-manager healthy again after %s", time.Since(start).Round(time.Millisecond))
	})

	// twice: the first one kwokctl started, the second one the supervision did
	for i := 1; i <= 2; i++ {
		t.Run(fmt.Sprintf("kube-scheduler exits %d", i), func(t *testing.T) {
			pid, err := c.ComponentPID("kube-scheduler")
			require.NoError(t, err)
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			start := time.Now()
			// a pod without a node: only a running scheduler puts it on kwok's node
			name := fmt.Sprintf("after-scheduler-exit-%d", i)
			pod := filepath.Join(t.TempDir(), "pod.yaml")
			require.NoError(t, os.WriteFile(pod, []byte(`apiVersion: v1
kind: Pod
metadata: {name: `+name+`, namespace: default}
spec:
  tolerations: [{operator: Exists}]
  containers: [{name: c, image: example.invalid/none}]
`), 0o644))
			c.MustKubectl("apply", "-f", pod)
			testenv.Eventually(t, "the pod scheduled and Ready", func() error {
				out, err := c.KubectlRun("get", "pod", name, "-n", "default", "-o",
					`jsonpath={.spec.nodeName}/{.status.conditions[?(@.type=="Ready")].status}`)
				if err != nil {
					return err
				}
				if strings.TrimSpace(out) != "node-000000/True" {
					return fmt.Errorf("node/Ready: %q", out)
				}
				return nil
			})
			newPID, err := c.ComponentPID("kube-scheduler")
			require.NoError(t, err)
			require.NotEqual(t, pid, newPID)
			require.True(t, running(newPID), "the pid file names no running kube-scheduler")
			t.Logf("kube-scheduler killed, pod scheduled and Ready after %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

// holdPortWhenFree listens on addr as soon as it is free (polling for up to 20 s) and holds it
// until the component's log says it met the taken port ("address already in use" once more than
// before), for at most 20 s. The channel receives nil when that happened, an error otherwise.
func holdPortWhenFree(addr, log string) <-chan error {
	const inUse = "address already in use"
	count := func() int {
		raw, _ := os.ReadFile(log)
		return strings.Count(string(raw), inUse)
	}
	met := make(chan error, 1)
	go func() {
		defer close(met)
		before := count()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				continue
			}
			defer func() { _ = l.Close() }()
			for held := time.Now(); time.Since(held) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
				if count() > before {
					met <- nil
					return
				}
			}
			met <- fmt.Errorf("held %s for 20 s, and %s never said %q", addr, log, inUse)
			return
		}
		met <- fmt.Errorf("%s was never free in 20 s", addr)
	}()
	return met
}
