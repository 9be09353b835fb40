package kwok

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
)

// A listener that takes a component's port while it is down makes the restarted one exit
// ("address already in use"); RestartAPIServer and RestartKCM start it again once the port is
// free. One cluster serves both cases.
func TestRestartWhilePortTaken(t *testing.T) {
	c := NewCluster(t, "kwok-restart")
	c.Up()

	t.Run("kube-apiserver", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		require.NoError(t, err)
		u, err := url.Parse(cfg.Host)
		require.NoError(t, err)
		taken := holdPortWhenFree(u.Host)
		unavailable, err := c.RestartAPIServer(60 * time.Second)
		require.NoError(t, err)
		_, ok := <-taken
		require.True(t, ok, "the test did not get the port while kube-apiserver was down")
		require.Contains(t, logTail(c.componentLog("kube-apiserver"), 200), "address already in use",
			"the restarted kube-apiserver never met the taken port")
		t.Logf("port held for 3 s, kube-apiserver serving again after %s", unavailable.Round(time.Millisecond))
	})

	t.Run("kube-controller-manager", func(t *testing.T) {
		pid, err := c.ComponentPID("kube-controller-manager")
		require.NoError(t, err)
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		require.NoError(t, err)
		port := ""
		for _, a := range strings.Split(string(raw), "\x00") {
			if p, ok := strings.CutPrefix(a, "--secure-port="); ok {
				port = p
			}
		}
		require.NotEmpty(t, port, "kube-controller-manager runs without --secure-port")
		taken := holdPortWhenFree("127.0.0.1:" + port)
		start := time.Now()
		require.NoError(t, c.RestartKCM())
		_, ok := <-taken
		require.True(t, ok, "the test did not get the port while kube-controller-manager was down")
		require.Contains(t, logTail(c.componentLog("kube-controller-manager"), 200), "address already in use",
			"the restarted kube-controller-manager never met the taken port")
		newPID, err := c.ComponentPID("kube-controller-manager")
		require.NoError(t, err)
		_, err = os.Stat(fmt.Sprintf("/proc/%d", newPID))
		require.NoError(t, err, "the pid file names no running kube-controller-manager")
		t.Logf("port held for 3 s, kube-controller-manager healthy again after %s", time.Since(start).Round(time.Millisecond))
	})
}

// holdPortWhenFree listens on addr as soon as it is free (polling for up to 20 s), holds it for
// 3 s and closes it; the channel receives the time it got the port, or is closed without a value.
func holdPortWhenFree(addr string) <-chan time.Time {
	taken := make(chan time.Time, 1)
	go func() {
		defer close(taken)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if l, err := net.Listen("tcp", addr); err == nil {
				taken <- time.Now()
				time.Sleep(3 * time.Second)
				_ = l.Close()
				return
			}
		}
	}()
	return taken
}
