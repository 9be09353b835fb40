package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func testPod(mutate func(*corev1.Pod)) *corev1.Pod {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptr.To(int64(65532)), RunAsGroup: ptr.To(int64(65532)), FSGroup: ptr.To(int64(65532))},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-0"}}},
		},
		Containers: []corev1.Container{{
			Name: "dittofs", Image: "dittofs", Command: []string{"/app/dfs"}, Args: []string{"start", "--config", "/config/config.yaml", "--name=$(POD_NAME)"},
			Env:          []corev1.EnvVar{{Name: "POD_NAME", Value: "x-0"}},
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/config", ReadOnly: true}, {Name: "data", MountPath: "/data"}},
		}},
	}}
	pod.Name, pod.Namespace = "x-0", "ns"
	if mutate != nil {
		mutate(pod)
	}
	return pod
}

func testRun(pod *corev1.Pod) *podRun {
	p := &provider{cfg: config{bins: map[string]string{"/app/dfs": "/bin/true"}, stateDir: "/state", ipPrefix: "127.0.1"}}
	return newPodRun(p, pod, "127.0.1.2")
}

// TestUnsupported: what dfsnode cannot run is named, never skipped.
func TestUnsupported(t *testing.T) {
	cases := map[string]struct {
		mutate func(*corev1.Pod)
		want   string
	}{
		"the DittoFS pod runs": {nil, ""},
		"init containers":      {func(p *corev1.Pod) { p.Spec.InitContainers = []corev1.Container{{Name: "wait"}} }, "init containers are not run (wait)"},
		"an unmapped command":  {func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/bin/other"} }, "has no --bin mapping"},
		"no command":           {func(p *corev1.Pod) { p.Spec.Containers[0].Command = nil }, "has no --bin mapping"},
		"a projected volume": {func(p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap, p.Spec.Volumes[0].Projected = nil, &corev1.ProjectedVolumeSource{}
		}, "volume config: only configMap"},
		"a subPath mount": {func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "x" }, "subPath mounts are not supported (/config)"},
		"an exec probe": {func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}}
		}, "only httpGet and tcpSocket probes"},
		"a postStart hook": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{}}
		}, "only the preStop sleep hook"},
		"a mount with no volume": {func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[1].Name = "gone" }, "mount /data has no volume gone"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := testRun(testPod(tc.mutate)).unsupported()
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("unsupported() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCommand: the container runs in the pod's network namespace, in a private mount namespace
// with its volumes at their mount paths (the config read-only), chrooted as its user.
func TestCommand(t *testing.T) {
	r := testRun(testPod(nil))
	r.ns = &netns{path: "/proc/42/ns/net"}
	r.containers[0].binary = "/host/dfs"
	cmd := r.command(r.containers[0], "/state/root", map[string]string{"config": "/state/cm", "data": "/pv/data"})
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"nsenter --net=/proc/42/ns/net -- unshare --mount --propagation private --"} {
		if !strings.HasPrefix(args, want) {
			t.Fatalf("command %q does not start with %q", args, want)
		}
	}
	script := ""
	for i, a := range cmd.Args {
		if a == "-c" && i+1 < len(cmd.Args) {
			script = cmd.Args[i+1]
		}
	}
	for _, want := range []string{
		"mount --bind '/state/cm' '/state/root/config'\nmount -o remount,bind,ro '/state/root/config'\n",
		"mount --bind '/pv/data' '/state/root/data'\n",
		"mount --bind '/host/dfs' '/state/root/app/dfs'\nmount -o remount,bind,ro '/state/root/app/dfs'\n",
		"mount -t proc proc '/state/root/proc'\n",
		`exec chroot --userspec=65532:65532 --groups=65532 '/state/root' "$@"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, "remount,bind,ro '/state/root/data'") {
		t.Errorf("the data volume is mounted read-only:\n%s", script)
	}
	if got := cmd.Args[len(cmd.Args)-4:]; strings.Join(got, " ") != "start --config /config/config.yaml --name=x-0" {
		t.Errorf("argv %q: $(POD_NAME) not expanded as the kubelet does", got)
	}
	if !contains(cmd.Env, "POD_NAME=x-0") || !contains(cmd.Env, "HOSTNAME=x-0") || !contains(cmd.Env, "PATH="+imagePath) {
		t.Errorf("env %q lacks the container's, HOSTNAME or PATH", cmd.Env)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"plain": "plain", "$(A)": "1", "x=$(B)/$(A)": "x=two/1", "$(MISSING)": "$(MISSING)", "$(A": "$(A",
	} {
		if got := expand(in, env); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewConfig(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "dfs")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	ok := func(stateDir, prefix string, bins, fwd []string) error {
		_, err := newConfig("n", stateDir, prefix, bins, fwd)
		return err
	}
	if err := ok(dir, "127.0.1", []string{"/app/dfs=" + bin}, []string{"10.96.0.50:9000=127.0.0.1:1234"}); err != nil {
		t.Fatalf("valid flags refused: %v", err)
	}
	for name, err := range map[string]error{
		"--state-dir is required":                 ok("", "127.0.1", nil, nil),
		"--pod-ip-prefix \"10.0.0\"":              ok(dir, "10.0.0", nil, nil),
		"--bin \"app/dfs=":                        ok(dir, "127.0.1", []string{"app/dfs=" + bin}, nil),
		"is not a file":                           ok(dir, "127.0.1", []string{"/app/dfs=" + dir}, nil),
		"--forward \"10.96.0.50=127.0.0.1:1234\"": ok(dir, "127.0.1", nil, []string{"10.96.0.50=127.0.0.1:1234"}),
	} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("want an error naming %q, got %v", name, err)
		}
	}
}

// TestWriteFiles: a ConfigMap volume as the kubelet lays it out (keys or items, modes).
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	data := map[string][]byte{"config.yaml": []byte("a: 1\n"), "other": []byte("x")}
	if err := writeFiles(dir, data, []corev1.KeyToPath{{Key: "config.yaml", Path: "sub/c.yaml", Mode: ptr.To(int32(0o600))}}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "sub", "c.yaml"))
	if err != nil || string(b) != "a: 1\n" {
		t.Fatalf("item: %q %v", b, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "sub", "c.yaml")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !os.IsNotExist(err) {
		t.Errorf("a key not in items was written")
	}
	if err := writeFiles(t.TempDir(), data, []corev1.KeyToPath{{Key: "missing", Path: "m"}}, nil); err == nil {
		t.Errorf("a missing key was not reported")
	}
}
