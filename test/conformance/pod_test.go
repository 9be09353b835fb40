//go:build linux

package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	charts "github.com/dittofs/dittofs-operator/helm-charts"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

var (
	rendererOnce sync.Once
	renderer     *specs.Renderer
	rendererErr  error
)

// operatorRenderer is the operator's own renderer over the embedded chart.
func operatorRenderer(t testing.TB) *specs.Renderer {
	t.Helper()
	rendererOnce.Do(func() {
		chrt, err := specs.LoadChart(charts.FS, "helm-charts/dittoserver")
		renderer, rendererErr = &specs.Renderer{Chart: chrt}, err
	})
	require.NoError(t, rendererErr)
	return renderer
}

// secretData is the Secrets of a case's namespace: name -> key -> value.
type secretData map[string]map[string]string

// podCase is one DittoServer and the Secrets that exist beside it.
type podCase struct {
	name    string
	ds      *v1alpha1.DittoServer
	secrets secretData
	// container, when set, changes the built server container before its env is resolved
	// (negative cases only; it must say why where it is defined).
	container func(c *corev1.Container)
	// check, when set, runs against the booted server after the common checks (first boot).
	check func(t *testing.T, p *pod, a *api)
}

// pod is what the kubelet would run for a case, mapped onto the local machine.
type pod struct {
	name       string
	ds         *v1alpha1.DittoServer
	sts        *appsv1.StatefulSet
	container  corev1.Container
	inits      []initContainer
	configYAML string // config.yaml exactly as rendered into the ConfigMap
	configTree map[string]any
	secrets    secretData // the case's Secrets plus the generated and operator-owned ones

	adminUser, adminPassword string

	base       string            // temp root of this pod
	mounts     map[string]string // container mount path -> local directory
	configPath string            // local path of the mounted config.yaml
	env        []string          // resolved container env (+ PATH, HOSTNAME as in a pod)
	argv       []string          // container command+args, mapped
	user       runAs
	sb         *sandbox
	initTook   time.Duration // init containers of the last start
	check      func(t *testing.T, p *pod, a *api)
}

// newDittoServer is a DittoServer as a user would write it (the webhook/CRD defaults are
// applied by the operator's own code paths).
func newDittoServer(name string, mutate func(s *v1alpha1.DittoServerSpec)) *v1alpha1.DittoServer {
	ds := &v1alpha1.DittoServer{}
	ds.APIVersion, ds.Kind = v1alpha1.GroupVersion.String(), "DittoServer"
	ds.Name, ds.Namespace = name, "conformance"
	ds.Spec.Storage.MetadataSize = "1Gi"
	if mutate != nil {
		mutate(&ds.Spec)
	}
	return ds
}

// randomString is a value as the operator generates it.
func randomString(t testing.TB, n int) string {
	s, err := specs.RandomString(n)
	require.NoError(t, err)
	return s
}

// preparePod renders the case through the operator's code path and lays the pod out on disk.
func preparePod(t *testing.T, sb *sandbox, c podCase) *pod {
	t.Helper()
	ds := c.ds
	rendered, err := operatorRenderer(t).Render(ds)
	require.NoError(t, err, "rendering the chart")
	cm, err := rendered.ConfigMap()
	require.NoError(t, err)
	require.Equal(t, specs.ConfigMapName(ds), cm.Name)
	cfg, err := rendered.ConfigYAML()
	require.NoError(t, err)

	p := &pod{name: c.name, ds: ds, configYAML: cfg, sb: sb, secrets: secretData{}, check: c.check}
	for name, kv := range c.secrets {
		p.secrets[name] = map[string]string{}
		for k, v := range kv {
			p.secrets[name][k] = v
		}
	}
	p.configTree, err = parseConfig(cfg)
	require.NoError(t, err)

	// Secrets: the user's, or the ones the operator generates (same names, keys and shape as
	// internal/hybrid/secrets.go: JWT 48 characters, admin username/password).
	spec := ds.Spec
	jwt, admin := specs.JWTSecretRef(ds), specs.AdminSecretRef(ds)
	if jwt.Name == specs.JWTSecretName(ds) {
		p.secrets[jwt.Name] = map[string]string{specs.JWTSecretKey: randomString(t, 48)}
	}
	if admin.Name == specs.AdminSecretName(ds) {
		p.secrets[admin.Name] = map[string]string{
			specs.AdminUsernameKey: specs.DefaultAdminUser, specs.AdminPasswordKey: randomString(t, 24),
		}
	}
	if spec.APITLSMode() == v1alpha1.APITLSOperator {
		// The operator's CA and the certificate it signs (internal/hybrid/apitls.go).
		now := time.Now()
		ca, caKey, err := specs.IssueAPICA(ds, now)
		require.NoError(t, err)
		cert, key, err := specs.IssueAPICertificate(ds, "cluster.local", ca, caKey, now)
		require.NoError(t, err)
		p.secrets[specs.OperatorAPITLSSecretName(ds)] = map[string]string{
			specs.APITLSCAKey: string(ca), specs.APITLSCAKeyPK: string(caKey), specs.APITLSCert: string(cert), specs.APITLSKey: string(key),
		}
	}
	p.adminUser = specs.DefaultAdminUser
	if u, ok := p.secrets[admin.Name][specs.AdminUsernameKey]; ok {
		require.Equal(t, specs.DefaultAdminUser, u, "DittoFS v0.29.0's admin is always %q", specs.DefaultAdminUser)
	}
	p.adminPassword = p.secrets[admin.Name][admin.Key]
	require.NotEmpty(t, p.adminPassword, "admin Secret %s key %s", admin.Name, admin.Key)

	// The operator-owned Secret with the discrete PostgreSQL settings (internal/hybrid/secrets.go).
	postgresSecret := ""
	if db := spec.Database; db != nil && db.PostgresSecretRef != nil && !spec.PerconaEnabled() {
		uri, ok := p.secrets[db.PostgresSecretRef.Name][db.PostgresSecretRef.Key]
		require.True(t, ok, "case Secret %s key %s", db.PostgresSecretRef.Name, db.PostgresSecretRef.Key)
		settings, err := specs.ParsePostgresURI(uri)
		require.NoError(t, err)
		postgresSecret = specs.PostgresEnvSecretName(ds)
		p.secrets[postgresSecret] = settings
	}

	// A server on Percona reads the Percona user Secret (the controller passes its name once
	// the cluster is ready).
	perconaSecret := ""
	if spec.PerconaEnabled() {
		perconaSecret = specs.PerconaUserSecretName(ds)
		require.Contains(t, p.secrets, perconaSecret, "the case must provide the Percona user Secret")
	}

	p.sts = specs.DesiredStatefulSet(ds, specs.StatefulSetInputs{
		Image: specs.DefaultImage(), ConfigHash: specs.ConfigHash(cfg, nil),
		JWTSecret: jwt, AdminPassword: admin, PostgresSecret: postgresSecret, PerconaSecret: perconaSecret,
	})
	podSpec := p.sts.Spec.Template.Spec
	require.Len(t, podSpec.Containers, 1)
	p.container = *podSpec.Containers[0].DeepCopy()
	if c.container != nil {
		c.container(&p.container)
	}

	p.user = podUser(p.sts, &p.container)

	// One directory per volume mount.
	p.base, err = os.MkdirTemp("", "dfs-conformance-"+c.name+"-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(p.base, 0o711))
	t.Cleanup(func() { _ = os.RemoveAll(p.base) })
	p.mounts = map[string]string{}
	volumes := map[string]corev1.Volume{}
	for _, v := range podSpec.Volumes {
		volumes[v.Name] = v
	}
	claims := map[string]bool{}
	for _, c := range p.sts.Spec.VolumeClaimTemplates {
		claims[c.Name] = true
	}
	var configVolumeDir string
	for _, vm := range p.container.VolumeMounts {
		require.Empty(t, vm.SubPath, "mount %s: subPath is not mapped by this suite", vm.MountPath)
		dir := filepath.Join(p.base, vm.Name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		v, isVolume := volumes[vm.Name]
		switch {
		case isVolume && v.ConfigMap != nil:
			require.Equal(t, cm.Name, v.ConfigMap.Name, "mount %s: the ConfigMap volume must be the rendered ConfigMap", vm.MountPath)
			require.True(t, vm.ReadOnly, "the config mount should be read-only")
			configVolumeDir = dir
		case isVolume && v.EmptyDir != nil, claims[vm.Name]:
			p.chownToPod(t, dir)
		case isVolume && v.Secret != nil:
			// The kubelet writes the listed keys as files (mode 0644); a missing key would
			// keep the container from starting.
			require.True(t, vm.ReadOnly, "mount %s: a Secret volume should be read-only", vm.MountPath)
			data, ok := p.secrets[v.Secret.SecretName]
			require.True(t, ok, "mount %s: Secret %s does not exist", vm.MountPath, v.Secret.SecretName)
			require.NotEmpty(t, v.Secret.Items, "mount %s: the suite maps listed keys only", vm.MountPath)
			mode := os.FileMode(0o644)
			if v.Secret.DefaultMode != nil {
				mode = os.FileMode(*v.Secret.DefaultMode)
			}
			for _, it := range v.Secret.Items {
				value, ok := data[it.Key]
				require.True(t, ok, "mount %s: Secret %s has no key %s", vm.MountPath, v.Secret.SecretName, it.Key)
				p.writeSecretFile(t, filepath.Join(dir, it.Path), []byte(value), mode)
			}
		default:
			t.Fatalf("mount %s (%s) is backed by neither a volume nor a claim template this suite knows", vm.MountPath, vm.Name)
		}
		p.mounts[vm.MountPath] = dir
	}
	require.NotEmpty(t, configVolumeDir, "the container does not mount the ConfigMap")

	// The ConfigMap's files, with paths rewritten only by the mount mapping.
	for key, value := range cm.Data {
		if key == specs.ConfigFileName {
			mapped, rewrites, err := rewriteConfigPaths(value, p.mapPath)
			require.NoError(t, err)
			for _, r := range rewrites {
				t.Logf("config %s: %s -> %s", r.key, r.from, r.to)
			}
			value = mapped
		}
		require.NoError(t, os.WriteFile(filepath.Join(configVolumeDir, key), []byte(value), 0o644))
	}

	p.env = p.resolveEnv(t, &p.container)
	for i := range podSpec.InitContainers {
		p.inits = append(p.inits, p.prepareInit(t, &podSpec.InitContainers[i]))
	}

	require.Equal(t, []string{specs.DittoFSBinary}, p.container.Command, "container command")
	p.argv = []string{dfsBin}
	for _, a := range p.container.Args {
		p.argv = append(p.argv, p.mapArg(a))
	}
	p.configPath = p.mapArg(specs.ConfigMountPath + "/" + specs.ConfigFileName)
	require.FileExists(t, p.configPath)
	require.Contains(t, p.argv, p.configPath, "the container args must point dfs at the mounted config")
	return p
}

// initContainer is an init container of the pod, mapped like the server container.
type initContainer struct {
	name string
	argv []string
	env  []string
	user runAs
}

// prepareInit maps an init container. Its image is not available here, so its command runs
// from this machine: /bin/sh and date from the base system and, for the PostgreSQL wait,
// pg_isready from Debian's postgresql package (put first on the image's PATH, where the
// PostgreSQL client image has its own).
func (p *pod) prepareInit(t testing.TB, c *corev1.Container) initContainer {
	t.Helper()
	require.NotEmpty(t, c.Command, "init container %s has no command", c.Name)
	for _, vm := range c.VolumeMounts {
		_, ok := p.mounts[vm.MountPath]
		require.True(t, ok, "init container %s mounts %s, which the server does not", c.Name, vm.MountPath)
	}
	ic := initContainer{name: c.Name, user: podUser(p.sts, c)}
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		ic.argv = append(ic.argv, p.mapArg(a))
	}
	require.True(t, filepath.IsAbs(ic.argv[0]) && isExecutable(ic.argv[0]), "init container %s: %s does not exist here", c.Name, ic.argv[0])
	for _, kv := range p.resolveEnv(t, c) {
		if strings.HasPrefix(kv, "PATH=") {
			kv = "PATH=" + postgresBinDir(t) + ":" + strings.TrimPrefix(kv, "PATH=")
		}
		ic.env = append(ic.env, kv)
	}
	return ic
}

// podUser is the identity the container runs as (container over pod security context).
func podUser(sts *appsv1.StatefulSet, c *corev1.Container) runAs {
	if os.Geteuid() != 0 || setprivBin == "" {
		return runAs{}
	}
	u := runAs{switchUser: true}
	psc := sts.Spec.Template.Spec.SecurityContext
	if psc != nil {
		if psc.RunAsUser != nil {
			u.uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			u.gid = *psc.RunAsGroup
		}
		if psc.FSGroup != nil {
			u.groups = append(u.groups, *psc.FSGroup)
		}
		u.groups = append(u.groups, psc.SupplementalGroups...)
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			u.uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			u.gid = *sc.RunAsGroup
		}
	}
	return u
}

// writeSecretFile writes a Secret key as the kubelet does: owned by root and the pod's fsGroup,
// with the volume's mode (so a 0440 keytab is readable through the group only).
func (p *pod) writeSecretFile(t testing.TB, file string, data []byte, mode os.FileMode) {
	require.NoError(t, os.WriteFile(file, data, mode))
	require.NoError(t, os.Chmod(file, mode))
	if p.user.switchUser {
		gid := p.user.gid
		if len(p.user.groups) > 0 {
			gid = p.user.groups[0]
		}
		require.NoError(t, os.Chown(file, 0, int(gid)))
	}
}

// chownToPod gives a writable volume to the pod's user and fsGroup, as the kubelet does.
func (p *pod) chownToPod(t testing.TB, dir string) {
	if !p.user.switchUser {
		return
	}
	gid := p.user.gid
	if len(p.user.groups) > 0 {
		gid = p.user.groups[0]
	}
	require.NoError(t, os.Chown(dir, int(p.user.uid), int(gid)))
	require.NoError(t, os.Chmod(dir, 0o2770))
}

// mapPath maps a container path onto the local directory of the mount that holds it.
func (p *pod) mapPath(path string) (string, bool) {
	best := ""
	for m := range p.mounts {
		if (path == m || strings.HasPrefix(path, m+"/")) && len(m) > len(best) {
			best = m
		}
	}
	if best == "" {
		return "", false
	}
	return p.mounts[best] + strings.TrimPrefix(path, best), true
}

// mapArg maps an argument that is (or ends in "=") a path under a mount.
func (p *pod) mapArg(a string) string {
	if m, ok := p.mapPath(a); ok {
		return m
	}
	if i := strings.Index(a, "="); i > 0 {
		if m, ok := p.mapPath(a[i+1:]); ok {
			return a[:i+1] + m
		}
	}
	return a
}

// resolveEnv resolves the container env like the kubelet: literal values and secretKeyRef
// against the case's Secrets (paths under mounts mapped), plus PATH from the image and HOSTNAME.
func (p *pod) resolveEnv(t testing.TB, c *corev1.Container) []string {
	t.Helper()
	env := []string{"PATH=" + imagePath, "HOSTNAME=" + p.sts.Name + "-0"}
	for _, from := range c.EnvFrom {
		require.NotNil(t, from.SecretRef, "envFrom other than secretRef is not resolved by this suite")
		s, ok := p.secrets[from.SecretRef.Name]
		require.True(t, ok || (from.SecretRef.Optional != nil && *from.SecretRef.Optional), "envFrom Secret %s missing", from.SecretRef.Name)
		keys := make([]string, 0, len(s))
		for k := range s {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, from.Prefix+k+"="+s[k])
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			require.NotContains(t, e.Value, "$(", "env %s: $(VAR) expansion is not resolved by this suite", e.Name)
			v := e.Value
			if m, ok := p.mapPath(v); ok {
				t.Logf("env %s: %s -> %s", e.Name, v, m)
				v = m
			}
			env = append(env, e.Name+"="+v)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := p.secrets[ref.Name][ref.Key]
			if !ok && ref.Optional != nil && *ref.Optional {
				continue
			}
			require.True(t, ok, "env %s: Secret %s has no key %s (the kubelet would not start the container)", e.Name, ref.Name, ref.Key)
			env = append(env, e.Name+"="+v)
		default:
			t.Fatalf("env %s: only value and secretKeyRef are resolved by this suite", e.Name)
		}
	}
	if !useNetns && c.Name == p.container.Name {
		// Fallback: the only difference from the pod. The host network is shared, so the
		// 0.0.0.0 binds are narrowed to loopback through the same env mechanism.
		env = append(env, "DITTOFS_CONTROLPLANE_HOST=127.0.0.1", "DITTOFS_METRICS_HOST=127.0.0.1")
		t.Logf("FALLBACK: added DITTOFS_CONTROLPLANE_HOST=127.0.0.1 and DITTOFS_METRICS_HOST=127.0.0.1 to the pod env (%s)", fallbackReason)
	}
	return env
}

// envValue returns the value of name in the resolved env.
func (p *pod) envValue(name string) (string, bool) {
	v, ok := "", false
	for _, kv := range p.env {
		if k, val, _ := strings.Cut(kv, "="); k == name {
			v, ok = val, true
		}
	}
	return v, ok
}

// containerPort returns the container port with the given name.
func (p *pod) containerPort(name string) (int32, bool) {
	for _, cp := range p.container.Ports {
		if cp.Name == name {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// --- config trees -------------------------------------------------------------------------

// parseConfig parses config.yaml into a JSON-shaped tree, numbers kept verbatim.
func parseConfig(text string) (map[string]any, error) {
	j, err := yaml.YAMLToJSON([]byte(text))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return tree, nil
}

type pathRewrite struct{ key, from, to string }

// urlPathKeys hold absolute paths that are URL paths, not files.
var urlPathKeys = map[string]bool{"metrics.path": true}

// rewriteConfigPaths maps every string value that is a path under a mount and fails on any
// other absolute path (it would land on the pod's read-only root filesystem). Nothing else
// changes: the result, mapped back, must equal the input.
func rewriteConfigPaths(text string, mapPath func(string) (string, bool)) (string, []pathRewrite, error) {
	tree, err := parseConfig(text)
	if err != nil {
		return "", nil, err
	}
	var rewrites []pathRewrite
	var problems []string
	mapped := mapStrings(tree, "", func(key, s string) string {
		if !strings.HasPrefix(s, "/") || urlPathKeys[key] {
			return s
		}
		m, ok := mapPath(s)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: %s is on no volume mount", key, s))
			return s
		}
		rewrites = append(rewrites, pathRewrite{key, s, m})
		return m
	})
	if len(problems) > 0 {
		return "", nil, fmt.Errorf("the config has paths outside the pod's volumes: %s", strings.Join(problems, "; "))
	}
	j, err := json.Marshal(mapped)
	if err != nil {
		return "", nil, err
	}
	out, err := yaml.JSONToYAML(j)
	if err != nil {
		return "", nil, err
	}
	// Self-check: undo the rewrites and compare with the rendered tree.
	back, err := parseConfig(string(out))
	if err != nil {
		return "", nil, err
	}
	undo := map[string]string{}
	for _, r := range rewrites {
		undo[r.key] = r.from
	}
	back = mapStrings(back, "", func(key, s string) string {
		if from, ok := undo[key]; ok {
			return from
		}
		return s
	}).(map[string]any)
	if !reflect.DeepEqual(tree, back) {
		return "", nil, fmt.Errorf("rewriting paths changed more than the paths")
	}
	return string(out), rewrites, nil
}

// mapStrings returns a copy of node with fn applied to every string (key is the dotted path).
func mapStrings(node any, key string, fn func(key, s string) string) any {
	switch n := node.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, v := range n {
			out[k] = mapStrings(v, joinKey(key, k), fn)
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = mapStrings(v, key, fn)
		}
		return out
	case string:
		return fn(key, n)
	default:
		return n
	}
}

func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// lookup returns the value at a dotted path.
func lookup(tree map[string]any, path string) (any, bool) {
	var cur any = tree
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// deleteKey removes the value at a dotted path.
func deleteKey(tree map[string]any, path string) {
	parts := strings.Split(path, ".")
	cur := tree
	for _, part := range parts[:len(parts)-1] {
		next, ok := cur[part].(map[string]any)
		if !ok {
			return
		}
		cur = next
	}
	delete(cur, parts[len(parts)-1])
}
