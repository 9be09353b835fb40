package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// imagePath is the PATH a container gets when its env has none.
const imagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// podRun is one pod on the node.
type podRun struct {
	p   *provider
	ip  string
	dir string // --state-dir/pods/<namespace>_<name>

	mu         sync.Mutex
	pod        *corev1.Pod
	startTime  metav1.Time
	containers []*containerRun
	ns         *netns
	stopping   bool
	stopped    chan struct{} // closed by terminate
}

// containerRun is one container of the pod and its process.
type containerRun struct {
	spec   corev1.Container
	binary string // the machine's binary for spec.Command[0]

	// guarded by podRun.mu
	state, last corev1.ContainerState
	ready       bool
	started     bool
	restarts    int32
	cmd         *exec.Cmd
	exited      chan struct{}
}

func newPodRun(p *provider, pod *corev1.Pod, ip string) *podRun {
	r := &podRun{p: p, ip: ip, pod: pod, startTime: metav1.Now(), stopped: make(chan struct{}),
		dir: filepath.Join(p.cfg.stateDir, "pods", pod.Namespace+"_"+pod.Name)}
	for _, c := range pod.Spec.Containers {
		r.containers = append(r.containers, &containerRun{spec: c, state: waiting("ContainerCreating", "")})
	}
	return r
}

func waiting(reason, msg string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
}

func (r *podRun) logf(format string, args ...any) {
	log.Printf("pod %s/%s: %s", r.pod.Namespace, r.pod.Name, fmt.Sprintf(format, args...))
}

func (r *podRun) setMeta(pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pod.ObjectMeta = *pod.ObjectMeta.DeepCopy()
}

// update changes the pod's state under the lock and tells virtual-kubelet.
func (r *podRun) update(fn func()) {
	r.mu.Lock()
	fn()
	r.mu.Unlock()
	r.p.changed(r)
}

// fail leaves every container Waiting with the reason: the pod cannot run here.
func (r *podRun) fail(reason, msg string) {
	r.logf("%s: %s", reason, msg)
	r.update(func() {
		for _, c := range r.containers {
			c.state = waiting(reason, msg)
		}
	})
}

// run sets the pod up and starts its containers.
func (r *podRun) run() {
	if msg := r.unsupported(); msg != "" {
		r.fail("CreateContainerConfigError", "dfsnode cannot run this pod: "+msg)
		return
	}
	if err := os.RemoveAll(r.dir); err != nil {
		r.fail("CreateContainerError", err.Error())
		return
	}
	var volumes map[string]string
	for attempt := 0; ; attempt++ {
		var err error
		if volumes, err = r.prepareVolumes(); err == nil {
			break
		}
		// as the kubelet: wait for a missing ConfigMap, Secret or unbound claim
		r.update(func() {
			for _, c := range r.containers {
				c.state = waiting("ContainerCreating", err.Error())
			}
		})
		if attempt%15 == 0 {
			r.logf("volumes: %v", err)
		}
		select {
		case <-r.stopped:
			return
		case <-time.After(2 * time.Second):
		}
	}
	addrs := []string{r.ip}
	for _, f := range r.p.cfg.forwards {
		host, _, _ := net.SplitHostPort(f.pod)
		addrs = append(addrs, host)
	}
	ns, err := newNetns(addrs)
	if err != nil {
		r.fail("CreateContainerError", err.Error())
		return
	}
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		ns.close()
		return
	}
	r.ns = ns
	r.mu.Unlock()
	for _, c := range r.containers {
		for _, port := range c.spec.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			addr := net.JoinHostPort(r.ip, strconv.Itoa(int(port.ContainerPort)))
			if err := ns.expose(addr, addr); err != nil {
				r.fail("CreateContainerError", fmt.Sprintf("port %s: %v", port.Name, err))
				return
			}
		}
	}
	for _, f := range r.p.cfg.forwards {
		if err := ns.reach(f.pod, f.host); err != nil {
			r.fail("CreateContainerError", fmt.Sprintf("--forward %s=%s: %v", f.pod, f.host, err))
			return
		}
	}
	root, err := r.prepareRoot()
	if err != nil {
		r.fail("CreateContainerError", err.Error())
		return
	}
	for _, c := range r.containers {
		go r.loop(c, root, volumes)
	}
}

// unsupported says what of the pod spec dfsnode cannot honour ("" when it can run it).
func (r *podRun) unsupported() string {
	spec := &r.pod.Spec
	if len(spec.InitContainers) > 0 {
		return "init containers are not run (" + spec.InitContainers[0].Name + ")"
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		switch {
		case v.ConfigMap != nil, v.Secret != nil, v.EmptyDir != nil, v.PersistentVolumeClaim != nil:
			volumes[v.Name] = v
		default:
			return fmt.Sprintf("volume %s: only configMap, secret, emptyDir and persistentVolumeClaim volumes are supported", v.Name)
		}
	}
	for _, c := range spec.Containers {
		if len(c.Command) == 0 || r.p.cfg.bins[c.Command[0]] == "" {
			return fmt.Sprintf("container %s: its command %v has no --bin mapping to a binary of this machine (image %s)", c.Name, c.Command, c.Image)
		}
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" || m.SubPathExpr != "" {
				return fmt.Sprintf("container %s: subPath mounts are not supported (%s)", c.Name, m.MountPath)
			}
			if _, ok := volumes[m.Name]; !ok {
				return fmt.Sprintf("container %s: mount %s has no volume %s", c.Name, m.MountPath, m.Name)
			}
		}
		for _, pr := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			if pr != nil && pr.HTTPGet == nil && pr.TCPSocket == nil {
				return fmt.Sprintf("container %s: only httpGet and tcpSocket probes are run", c.Name)
			}
		}
		if lc := c.Lifecycle; lc != nil && (lc.PostStart != nil || (lc.PreStop != nil && lc.PreStop.Sleep == nil)) {
			return fmt.Sprintf("container %s: only the preStop sleep hook is run", c.Name)
		}
	}
	return ""
}

// prepareVolumes lays every volume out on disk: volume name -> directory.
func (r *podRun) prepareVolumes() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spec, ns := &r.pod.Spec, r.pod.Namespace
	out := map[string]string{}
	uid, gid, groups, asUser := r.identity(nil)
	for _, v := range spec.Volumes {
		dir := filepath.Join(r.dir, "volumes", v.Name)
		switch {
		case v.ConfigMap != nil:
			cm, err := r.p.client.CoreV1().ConfigMaps(ns).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
					cm = &corev1.ConfigMap{}
				} else {
					return nil, fmt.Errorf("volume %s: ConfigMap %s: %w", v.Name, v.ConfigMap.Name, err)
				}
			}
			data := map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				data[k] = b
			}
			if err := writeFiles(dir, data, v.ConfigMap.Items, v.ConfigMap.DefaultMode); err != nil {
				return nil, err
			}
		case v.Secret != nil:
			s, err := r.p.client.CoreV1().Secrets(ns).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				if v.Secret.Optional != nil && *v.Secret.Optional {
					s = &corev1.Secret{}
				} else {
					return nil, fmt.Errorf("volume %s: Secret %s: %w", v.Name, v.Secret.SecretName, err)
				}
			}
			if err := writeFiles(dir, s.Data, v.Secret.Items, v.Secret.DefaultMode); err != nil {
				return nil, err
			}
			if len(groups) > 0 { // fsGroup owns the files, as the kubelet does
				_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, -1, int(groups[0])) })
			}
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return nil, err
			}
			if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
				return nil, err
			}
		case v.PersistentVolumeClaim != nil:
			var err error
			if dir, err = r.claimDir(ctx, v.PersistentVolumeClaim.ClaimName); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			// as the kubelet's fsGroup handling: the group owns the volume, setgid
			switch {
			case len(groups) > 0:
				if err := os.Chown(dir, -1, int(groups[0])); err != nil {
					return nil, err
				}
				if err := os.Chmod(dir, 0o2775); err != nil {
					return nil, err
				}
			case asUser:
				if err := os.Chown(dir, int(uid), int(gid)); err != nil {
					return nil, err
				}
			}
		}
		out[v.Name] = dir
	}
	return out, nil
}

// claimDir is the directory of a bound claim: its PersistentVolume's hostPath (the kwok
// cluster's provisioner makes those), else one under --state-dir/volumes named after the claim's
// UID. Either outlives the pod.
func (r *podRun) claimDir(ctx context.Context, claim string) (string, error) {
	pvc, err := r.p.client.CoreV1().PersistentVolumeClaims(r.pod.Namespace).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("PersistentVolumeClaim %s: %w", claim, err)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("PersistentVolumeClaim %s is not bound yet", claim)
	}
	dir := filepath.Join(r.p.cfg.stateDir, "volumes", r.pod.Namespace, claim+"-"+string(pvc.UID))
	pv, err := r.p.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("PersistentVolume %s: %w", pvc.Spec.VolumeName, err)
	}
	if pv.Spec.HostPath != nil {
		dir = pv.Spec.HostPath.Path
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// writeFiles writes a ConfigMap's or Secret's keys (or the listed items) as files.
func writeFiles(dir string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s is missing", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		p := filepath.Join(dir, filepath.Clean("/"+it.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, m); err != nil {
			return err
		}
		if err := os.Chmod(p, m); err != nil {
			return err
		}
	}
	return nil
}

// hostDirs are the machine's directories every pod root shares, read-only.
var hostDirs = []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc"}

// prepareRoot makes the pod's root directory: mount points for the machine's directories, the
// volumes and the containers' binaries. The mounts themselves are made inside each container's
// mount namespace (never on the machine).
func (r *podRun) prepareRoot() (string, error) {
	root := filepath.Join(r.dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	for _, d := range hostDirs {
		st, err := os.Lstat("/" + d)
		switch {
		case err != nil:
			continue
		case st.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink("/" + d)
			if err != nil {
				return "", err
			}
			if err := os.Symlink(target, filepath.Join(root, d)); err != nil {
				return "", err
			}
		default:
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				return "", err
			}
		}
	}
	for _, d := range []string{"dev", "proc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		return "", err
	}
	for _, c := range r.containers {
		c.binary = r.p.cfg.bins[c.spec.Command[0]]
		target := filepath.Join(root, c.spec.Command[0])
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, nil, 0o755); err != nil {
			return "", err
		}
		for _, m := range c.spec.VolumeMounts {
			if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o755); err != nil {
				return "", err
			}
		}
	}
	return root, nil
}

// identity is the user a container runs as (container over pod security context); asUser is
// false when neither sets runAsUser (the container runs as root).
func (r *podRun) identity(c *corev1.Container) (uid, gid int64, groups []int64, asUser bool) {
	if psc := r.pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid, asUser = *psc.RunAsUser, true
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
		if psc.FSGroup != nil {
			groups = append(groups, *psc.FSGroup)
		}
		groups = append(groups, psc.SupplementalGroups...)
	}
	if c != nil && c.SecurityContext != nil {
		if sc := c.SecurityContext; sc.RunAsUser != nil {
			uid, asUser = *sc.RunAsUser, true
		}
		if sc := c.SecurityContext; sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	return uid, gid, groups, asUser
}

// command is the process of one container start: nsenter into the pod's network namespace,
// unshare a private mount namespace, mount the root, chroot as the container's user.
func (r *podRun) command(c *containerRun, root string, volumes map[string]string) *exec.Cmd {
	q := shellQuote
	var s strings.Builder
	s.WriteString("set -e\n")
	ro := func(src, dst string) {
		fmt.Fprintf(&s, "mount --bind %s %s\nmount -o remount,bind,ro %s\n", q(src), q(dst), q(dst))
	}
	for _, d := range hostDirs {
		if st, err := os.Lstat("/" + d); err == nil && st.IsDir() {
			ro("/"+d, filepath.Join(root, d))
		}
	}
	fmt.Fprintf(&s, "mount --bind /dev %s\n", q(filepath.Join(root, "dev")))
	fmt.Fprintf(&s, "mount -t proc proc %s\n", q(filepath.Join(root, "proc")))
	for _, m := range c.spec.VolumeMounts {
		dst := filepath.Join(root, m.MountPath)
		if m.ReadOnly {
			ro(volumes[m.Name], dst)
		} else {
			fmt.Fprintf(&s, "mount --bind %s %s\n", q(volumes[m.Name]), q(dst))
		}
	}
	ro(c.binary, filepath.Join(root, c.spec.Command[0]))
	chroot := "exec chroot"
	if uid, gid, groups, asUser := r.identity(&c.spec); asUser {
		chroot += fmt.Sprintf(" --userspec=%d:%d", uid, gid)
		if len(groups) > 0 {
			gs := make([]string, len(groups))
			for i, g := range groups {
				gs[i] = strconv.FormatInt(g, 10)
			}
			chroot += " --groups=" + strings.Join(gs, ",")
		}
	}
	fmt.Fprintf(&s, "%s %s \"$@\"\n", chroot, q(root))

	env := map[string]string{}
	for _, e := range c.spec.Env {
		env[e.Name] = e.Value // resolved by virtual-kubelet before CreatePod
	}
	if _, ok := env["PATH"]; !ok {
		env["PATH"] = imagePath
	}
	if _, ok := env["HOSTNAME"]; !ok {
		env["HOSTNAME"] = r.pod.Name
	}
	argv := []string{}
	for _, a := range append(append([]string(nil), c.spec.Command...), c.spec.Args...) {
		argv = append(argv, expand(a, env))
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + r.ns.path, "--", "unshare", "--mount", "--propagation", "private", "--",
		"/bin/sh", "-c", s.String(), "sh"}, argv...)...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	sort.Strings(cmd.Env)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// expand replaces $(VAR) with the env value, as the kubelet does in command and args.
func expand(s string, env map[string]string) string {
	var out strings.Builder
	for {
		i := strings.Index(s, "$(")
		if i < 0 {
			return out.String() + s
		}
		j := strings.Index(s[i:], ")")
		if j < 0 {
			return out.String() + s
		}
		name := s[i+2 : i+j]
		out.WriteString(s[:i])
		if v, ok := env[name]; ok {
			out.WriteString(v)
		} else {
			out.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// loop runs a container, restarts it as the restart policy says, until the pod stops.
func (r *podRun) loop(c *containerRun, root string, volumes map[string]string) {
	logPath := filepath.Join(r.dir, c.spec.Name+".log")
	pidPath := filepath.Join(r.dir, c.spec.Name+".pid")
	for attempt := 0; ; attempt++ {
		cmd := r.command(c, root, volumes)
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			cmd.Stdout, cmd.Stderr = logFile, logFile
			r.mu.Lock()
			if r.stopping {
				err = errors.New("stopping")
			} else if err = cmd.Start(); err == nil {
				c.cmd, c.exited, c.started, c.ready = cmd, make(chan struct{}), false, false
				c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
			}
			r.mu.Unlock()
			_ = logFile.Close()
		}
		if err != nil {
			if r.isStopping() {
				return
			}
			r.fail("RunContainerError", err.Error())
			return
		}
		_ = os.WriteFile(pidPath, []byte(fmt.Sprintf("%d %s", cmd.Process.Pid, procStart(cmd.Process.Pid))), 0o644)
		r.logf("container %s started (pid %d, log %s)", c.spec.Name, cmd.Process.Pid, logPath)
		r.p.changed(r)
		probesDone := make(chan struct{})
		go r.probe(c, cmd, probesDone)
		err = cmd.Wait()
		close(probesDone)
		close(c.exited)
		_ = os.Remove(pidPath)
		code := int32(0)
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = int32(ee.ExitCode())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int32(ws.Signal())
			}
		}
		reason := "Completed"
		if code != 0 {
			reason = "Error"
		}
		stopping := r.isStopping()
		policy := r.pod.Spec.RestartPolicy
		restart := !stopping && (policy == "" || policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && code != 0))
		backoff := min(10*time.Second, time.Second<<min(attempt, 4))
		r.logf("container %s exited with %d", c.spec.Name, code)
		r.update(func() {
			term := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason,
				FinishedAt: metav1.Now(), ContainerID: containerID(cmd)}}
			if c.state.Running != nil {
				term.Terminated.StartedAt = c.state.Running.StartedAt
			}
			c.ready, c.started = false, false
			if restart {
				c.last, c.state = term, waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting container %s", backoff, c.spec.Name))
				c.restarts++
			} else {
				c.state = term
			}
		})
		if !restart {
			return
		}
		select {
		case <-r.stopped:
			return
		case <-time.After(backoff):
		}
	}
}

func (r *podRun) isStopping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}

func containerID(cmd *exec.Cmd) string {
	if cmd == nil || cmd.Process == nil {
		return ""
	}
	return fmt.Sprintf("dfsnode://%d", cmd.Process.Pid)
}

// probe runs the container's startup, readiness and liveness probes until done is closed.
func (r *podRun) probe(c *containerRun, cmd *exec.Cmd, done <-chan struct{}) {
	type state struct {
		p          *corev1.Probe
		next       time.Time
		succ, fail int32
	}
	now := time.Now()
	mk := func(p *corev1.Probe) *state {
		if p == nil {
			return nil
		}
		return &state{p: p, next: now.Add(time.Duration(p.InitialDelaySeconds) * time.Second)}
	}
	startup, readiness, liveness := mk(c.spec.StartupProbe), mk(c.spec.ReadinessProbe), mk(c.spec.LivenessProbe)
	started := startup == nil
	// run reports whether the probe's outcome passed a threshold: +1 success, -1 failure.
	run := func(s *state) int {
		if time.Now().Before(s.next) {
			return 0
		}
		s.next = time.Now().Add(time.Duration(max(s.p.PeriodSeconds, 1)) * time.Second)
		if r.check(c, s.p) {
			s.succ, s.fail = s.succ+1, 0
			if s.succ >= max(s.p.SuccessThreshold, 1) {
				return 1
			}
			return 0
		}
		s.succ, s.fail = 0, s.fail+1
		if s.fail >= max(s.p.FailureThreshold, 1) {
			return -1
		}
		return 0
	}
	setReady := func(v bool) {
		r.mu.Lock()
		changed := c.ready != v || c.started != started
		c.ready, c.started = v, started
		r.mu.Unlock()
		if changed {
			r.p.changed(r)
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if !started {
			switch run(startup) {
			case 1:
				started = true
			case -1:
				r.logf("container %s failed its startup probe: restarting it", c.spec.Name)
				r.kill(cmd, r.grace())
				return
			default:
				continue
			}
		}
		if readiness == nil {
			setReady(true)
		} else if v := run(readiness); v != 0 {
			setReady(v > 0)
		} else {
			setReady(c.isReady(r))
		}
		if liveness != nil && run(liveness) < 0 {
			r.logf("container %s failed its liveness probe: restarting it", c.spec.Name)
			r.kill(cmd, r.grace())
			return
		}
	}
}

func (c *containerRun) isReady(r *podRun) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.ready
}

// probeTransport is the probes' HTTP transport: like the kubelet's, it does not verify the
// certificate of an HTTPS probe (nor keep connections between probes).
var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does the same for probes
	DisableKeepAlives: true,
}

// check runs one probe against the pod IP (through the same forwarding as every client).
func (r *podRun) check(c *containerRun, p *corev1.Probe) bool {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	if h := p.HTTPGet; h != nil {
		host := r.ip
		if h.Host != "" {
			host = h.Host
		}
		scheme := "http"
		if h.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port(c, h.Port))), h.Path)
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		for _, hd := range h.HTTPHeaders {
			req.Header.Add(hd.Name, hd.Value)
		}
		resp, err := (&http.Client{Timeout: timeout, Transport: probeTransport}).Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(r.ip, strconv.Itoa(port(c, p.TCPSocket.Port))), timeout)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// port resolves a probe's port (a number or a container port's name).
func port(c *containerRun, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.spec.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func (r *podRun) grace() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

// kill stops a container process: its preStop sleep, SIGTERM, SIGKILL once grace has passed.
func (r *podRun) kill(cmd *exec.Cmd, grace time.Duration) {
	deadline := time.Now().Add(grace)
	r.mu.Lock()
	var c *containerRun
	for _, cr := range r.containers {
		if cr.cmd == cmd {
			c = cr
		}
	}
	r.mu.Unlock()
	if c == nil {
		return
	}
	if lc := c.spec.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
		sleep := min(time.Duration(lc.PreStop.Sleep.Seconds)*time.Second, time.Until(deadline))
		select {
		case <-time.After(sleep):
		case <-c.exited:
			return
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Until(deadline)):
		r.logf("container %s did not stop within the grace period: SIGKILL", c.spec.Name)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
}

// terminate stops the pod's containers within grace, then its namespace, and removes its
// directory (its PersistentVolumeClaims' directories stay).
func (r *podRun) terminate(grace time.Duration) {
	r.mu.Lock()
	if r.stopping {
		r.mu.Unlock()
		<-r.stopped
		return
	}
	r.stopping = true
	var running []*exec.Cmd
	for _, c := range r.containers {
		if c.cmd != nil && c.exited != nil {
			select {
			case <-c.exited:
			default:
				running = append(running, c.cmd)
			}
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, cmd := range running {
		wg.Add(1)
		go func() { defer wg.Done(); r.kill(cmd, grace) }()
	}
	wg.Wait()
	r.mu.Lock()
	ns := r.ns
	r.ns = nil
	r.mu.Unlock()
	if ns != nil {
		ns.close()
	}
	// the mounts lived in the containers' mount namespaces, gone with them: only empty mount
	// points and the pod's own files are left here
	if err := os.RemoveAll(r.dir); err != nil {
		r.logf("removing %s: %v", r.dir, err)
	}
	close(r.stopped)
	r.logf("stopped")
}

// snapshot is the pod with its current status.
func (r *podRun) snapshot() *corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pod := r.pod.DeepCopy()
	allReady, anyRunning := len(r.containers) > 0, false
	var statuses []corev1.ContainerStatus
	for _, c := range r.containers {
		started := c.started
		statuses = append(statuses, corev1.ContainerStatus{
			Name: c.spec.Name, Image: c.spec.Image, ImageID: "dfsnode://" + c.binary,
			ContainerID: containerID(c.cmd), Ready: c.ready, Started: &started, RestartCount: c.restarts,
			State: *c.state.DeepCopy(), LastTerminationState: *c.last.DeepCopy(),
		})
		allReady = allReady && c.ready
		anyRunning = anyRunning || c.state.Running != nil || c.restarts > 0
	}
	phase := corev1.PodPending
	if anyRunning {
		phase = corev1.PodRunning
	}
	cond := func(t corev1.PodConditionType, ok bool) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: t, Status: s, LastTransitionTime: r.startTime}
	}
	pod.Status = corev1.PodStatus{
		Phase: phase, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
		PodIP: r.ip, PodIPs: []corev1.PodIP{{IP: r.ip}}, StartTime: &r.startTime,
		Conditions: []corev1.PodCondition{
			cond(corev1.PodScheduled, true), cond(corev1.PodInitialized, true),
			cond(corev1.ContainersReady, allReady), cond(corev1.PodReady, allReady),
		},
		ContainerStatuses: statuses,
		QOSClass:          r.pod.Status.QOSClass,
	}
	return pod
}

// procStart is the start time of a process (field 22 of /proc/<pid>/stat), to recognise it.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}
