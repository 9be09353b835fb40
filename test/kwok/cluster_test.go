package kwok

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"
)

// A listener that takes kube-apiserver's port while it is down makes the restarted one exit
// ("address already in use"); RestartAPIServer starts it again once the port is free.
func TestRestartAPIServerWhilePortTaken(t *testing.T) {
	c := NewCluster(t, "kwok-restart")
	c.Up()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	u, err := url.Parse(cfg.Host)
	require.NoError(t, err)

	taken := make(chan time.Time, 1)
	go func() {
		defer close(taken)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if l, err := net.Listen("tcp", u.Host); err == nil {
				taken <- time.Now()
				time.Sleep(3 * time.Second)
				_ = l.Close()
				return
			}
		}
	}()
	unavailable, err := c.RestartAPIServer(60 * time.Second)
	require.NoError(t, err)
	_, ok := <-taken
	require.True(t, ok, "the test did not get the port while kube-apiserver was down")
	require.Contains(t, logTail(c.componentLog("kube-apiserver"), 200), "address already in use",
		"the restarted kube-apiserver never met the taken port")
	t.Logf("port held for 3 s, kube-apiserver serving again after %s", unavailable.Round(time.Millisecond))
}
