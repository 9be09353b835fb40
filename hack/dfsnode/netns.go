package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a pod's network namespace: held by a sleeping process (lo up, the pod IP and the
// --forward addresses on lo), entered by one OS thread of this process to open sockets in it.
type netns struct {
	holder *exec.Cmd
	path   string // /proc/<holder>/ns/net
	work   chan func()
	quit   chan struct{}
	done   chan struct{}

	mu        sync.Mutex
	listeners []net.Listener
}

// newNetns starts the holder and the thread inside the namespace. addrs are put on lo.
func newNetns(addrs []string) (*netns, error) {
	script := "ip link set lo up"
	for _, a := range addrs {
		script += fmt.Sprintf(" && ip addr add %s/32 dev lo", a)
	}
	script += " && echo ready && exec sleep infinity"
	holder := exec.Command("unshare", "--net", "--", "/bin/sh", "-c", script)
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := holder.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	holder.Stderr = &stderr
	if err := holder.Start(); err != nil {
		return nil, fmt.Errorf("starting the network namespace: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s != "ready" {
			_ = holder.Process.Kill()
			_ = holder.Wait()
			return nil, fmt.Errorf("setting up the network namespace: %s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = holder.Process.Kill()
		_ = holder.Wait()
		return nil, fmt.Errorf("setting up the network namespace timed out: %s", stderr.String())
	}
	ns := &netns{holder: holder, path: fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)}
	if err := ns.startWorker(); err != nil {
		_ = holder.Process.Kill()
		_ = holder.Wait()
		return nil, err
	}
	return ns, nil
}

// startWorker starts the goroutine whose locked thread sits in the namespace. The thread goes
// back to the host namespace before it is unlocked, so no other goroutine ever runs there.
func (ns *netns) startWorker() error {
	ns.work, ns.quit, ns.done = make(chan func()), make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(ns.done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := os.Open(ns.path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer func() { _ = target.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns.path, err)
			return
		}
		errc <- nil
		for {
			select {
			case fn := <-ns.work:
				fn()
			case <-ns.quit:
				if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
					runtime.UnlockOSThread()
				} // else return locked: the runtime ends the thread
				return
			}
		}
	}()
	return <-errc
}

// do runs fn on the thread inside the namespace.
func (ns *netns) do(fn func()) {
	finished := make(chan struct{})
	select {
	case ns.work <- func() { fn(); close(finished) }:
		<-finished
	case <-ns.done:
	}
}

// dial opens a TCP connection from inside the namespace.
func (ns *netns) dial(addr string) (net.Conn, error) {
	var c net.Conn
	err := fmt.Errorf("network namespace closed")
	ns.do(func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) })
	return c, err
}

// expose forwards hostAddr (on this machine) to podAddr inside the namespace.
func (ns *netns) expose(hostAddr, podAddr string) error {
	l, err := net.Listen("tcp", hostAddr)
	if err != nil {
		return err
	}
	ns.track(l)
	go serve(l, func() (net.Conn, error) { return ns.dial(podAddr) })
	return nil
}

// reach listens on podAddr inside the namespace and forwards to hostAddr on this machine.
func (ns *netns) reach(podAddr, hostAddr string) error {
	var l net.Listener
	err := fmt.Errorf("network namespace closed")
	ns.do(func() { l, err = net.Listen("tcp", podAddr) })
	if err != nil {
		return err
	}
	ns.track(l)
	go serve(l, func() (net.Conn, error) { return net.DialTimeout("tcp", hostAddr, 5*time.Second) })
	return nil
}

func (ns *netns) track(l net.Listener) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.listeners = append(ns.listeners, l)
}

// close stops the forwarders, the thread and the holder (the namespace goes with its last
// process).
func (ns *netns) close() {
	ns.mu.Lock()
	for _, l := range ns.listeners {
		_ = l.Close()
	}
	ns.listeners = nil
	ns.mu.Unlock()
	close(ns.quit)
	<-ns.done
	_ = syscall.Kill(-ns.holder.Process.Pid, syscall.SIGKILL)
	_ = ns.holder.Wait()
}

// serve accepts on l until it is closed and splices each connection to one from dial.
func serve(l net.Listener, dial func() (net.Conn, error)) {
	for {
		in, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			out, err := dial()
			if err != nil {
				_ = in.Close()
				return
			}
			splice(in, out)
		}()
	}
}

// splice copies both ways until both sides are done, half-closing as each direction ends.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}
