package chaos

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	pgv2 "github.com/percona/percona-postgresql-operator/v2/pkg/apis/pgv2.percona.com/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Names the operator uses (docs/ARCHITECTURE.md), spelled out: the suite tests the binary from
// the outside.
const (
	labelInstance   = "app.kubernetes.io/instance"
	annotationHash  = "dittofs.dittofs.com/config-hash"
	userJWTSecret   = "dittofs-jwt-secret"   // the user's own, made by the suite
	userAdminSecret = "dittofs-admin-secret" // the user's own, made by the suite
)

// generatedSecrets are the credentials the operator generates for a server without identity
// Secret references (the operator account's only once it reaches the REST API, never on kwok).
func generatedSecrets(name string) []string {
	return []string{name + "-jwt-secret", name + "-admin-credentials", name + "-operator-credentials"}
}

// snapshot is the namespace at one moment (one LIST per kind).
type snapshot struct {
	servers map[string]*v1alpha1.DittoServer
	sts     []appsv1.StatefulSet
	svcs    []corev1.Service
	cms     []corev1.ConfigMap
	pvcs    []corev1.PersistentVolumeClaim
	pods    []corev1.Pod
	secrets []corev1.Secret
	percona []pgv2.PerconaPGCluster
	events  []corev1.Event
}

func (r *run) snapshot() (*snapshot, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	s := &snapshot{servers: map[string]*v1alpha1.DittoServer{}}
	in := client.InNamespace(namespace)
	dsl := &v1alpha1.DittoServerList{}
	stsl := &appsv1.StatefulSetList{}
	svcl := &corev1.ServiceList{}
	cml := &corev1.ConfigMapList{}
	pvcl := &corev1.PersistentVolumeClaimList{}
	podl := &corev1.PodList{}
	secl := &corev1.SecretList{}
	evl := &corev1.EventList{}
	for _, l := range []client.ObjectList{dsl, stsl, svcl, cml, pvcl, podl, secl, evl} {
		if err := r.k8s.List(ctx, l, in); err != nil {
			return nil, err
		}
	}
	for i := range dsl.Items {
		s.servers[dsl.Items[i].Name] = &dsl.Items[i]
	}
	s.sts, s.svcs, s.cms, s.pvcs, s.pods, s.secrets, s.events = stsl.Items, svcl.Items, cml.Items, pvcl.Items, podl.Items, secl.Items, evl.Items
	if r.percona {
		pgl := &pgv2.PerconaPGClusterList{}
		if err := r.k8s.List(ctx, pgl, in); err != nil {
			return nil, err
		}
		s.percona = pgl.Items
	}
	return s, nil
}

// instanceNames maps the instance label of objects to their names, sorted.
func instanceNames[T any, P interface {
	*T
	metav1.Object
}](items []T) map[string][]string {
	out := map[string][]string{}
	for i := range items {
		o := P(&items[i])
		if inst := o.GetLabels()[labelInstance]; inst != "" {
			out[inst] = append(out[inst], o.GetName())
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func find[T any, P interface {
	*T
	metav1.Object
}](items []T, name string) P {
	for i := range items {
		if P(&items[i]).GetName() == name {
			return P(&items[i])
		}
	}
	return nil
}

// violation is one thing not (yet) as promised.
type violation struct {
	// server the violation belongs to; empty for the namespace as a whole
	server string
	// data: something that holds or opens data is lost or at risk; never set aside
	data bool
	msg  string
}

func (v violation) String() string {
	if v.server == "" {
		return v.msg
	}
	return v.server + ": " + v.msg
}

func strs(vs []violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.String())
	}
	return out
}

// violations is everything that is not (yet) as promised; empty means converged.
func (r *run) violations(s *snapshot) []violation {
	var v []violation
	add := func(server string, format string, args ...any) {
		v = append(v, violation{server: server, msg: fmt.Sprintf(format, args...)})
	}
	r.surpriseMu.Lock()
	v = append(v, r.surprises...)
	r.surpriseMu.Unlock()

	rels := releases(s.secrets)
	for name, list := range rels {
		deployed := 0
		for _, rel := range list {
			if strings.HasPrefix(rel.status, "pending-") {
				add(name, "release Secret %s is %s", rel.secret, rel.status)
			}
			if rel.status == "deployed" {
				deployed++
			}
		}
		if deployed > 1 {
			add(name, "release has %d deployed revisions", deployed)
		}
	}
	sts, svcs, cms, pods, pvcs := instanceNames(s.sts), instanceNames(s.svcs), instanceNames(s.cms), instanceNames(s.pods), instanceNames(s.pvcs)
	known := map[string]bool{}
	for _, sv := range r.servers {
		known[sv.name] = true
		ds := s.servers[sv.name]
		if !sv.wantExists {
			if ds != nil {
				add(sv.name, "deleted by the workload, still there (deleting=%v, finalizers %v)", ds.DeletionTimestamp != nil, ds.Finalizers)
				continue
			}
			for _, k := range []struct {
				kind string
				m    map[string][]string
			}{{"StatefulSet", sts}, {"Service", svcs}, {"ConfigMap", cms}, {"Pod", pods}} {
				if len(k.m[sv.name]) > 0 {
					add(sv.name, "deleted, %s %v not garbage-collected", k.kind, k.m[sv.name])
				}
			}
			if len(rels[sv.name]) > 0 {
				add(sv.name, "deleted, Helm release Secrets left: %v", rels[sv.name])
			}
			if sv.deleteData {
				for _, name := range pvcs[sv.name] {
					if pvc := find(s.pvcs, name); pvc.DeletionTimestamp == nil {
						add(sv.name, "deleted with deleteWithServer, PVC %s kept", name)
					}
				}
				for _, name := range generatedSecrets(sv.name) {
					if sec := find(s.secrets, name); sec != nil && sec.DeletionTimestamp == nil {
						add(sv.name, "deleted with deleteWithServer, Secret %s kept", name)
					}
				}
			}
			if sv.percona && sv.perconaDelete {
				if pg := find(s.percona, sv.name+"-postgres"); pg != nil && pg.DeletionTimestamp == nil {
					add(sv.name, "deleted with percona.deleteWithServer, PerconaPGCluster kept")
				}
			}
			continue
		}
		switch {
		case ds == nil:
			add(sv.name, "missing (the workload created it)")
		case ds.DeletionTimestamp != nil:
			add(sv.name, "being deleted, the workload did not delete it")
		default:
			for _, msg := range r.serverViolations(sv, ds, s, rels[sv.name], sts, svcs, cms, pods) {
				add(sv.name, "%s", msg)
			}
		}
	}
	for name := range s.servers {
		if !known[name] {
			add("", "unknown DittoServer %s", name)
		}
	}
	return append(v, r.ledger.check(s)...)
}

// serverViolations checks one server that should exist: converged (Ready for its generation),
// its spec in its objects, no duplicate.
func (r *run) serverViolations(sv *server, ds *v1alpha1.DittoServer, s *snapshot, rels []releaseInfo, sts, svcs, cms, pods map[string][]string) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	gen := ds.Generation
	if ds.Status.ObservedGeneration != gen {
		add("status.observedGeneration %d, generation %d", ds.Status.ObservedGeneration, gen)
	}
	for _, ct := range []string{"Ready", "Deployed"} {
		c := meta.FindStatusCondition(ds.Status.Conditions, ct)
		switch {
		case c == nil:
			add("no %s condition", ct)
		case c.Status != metav1.ConditionTrue:
			add("%s=%s %s: %s", ct, c.Status, c.Reason, c.Message)
		case c.ObservedGeneration != gen:
			add("%s for generation %d, not %d", ct, c.ObservedGeneration, gen)
		}
	}
	for _, ct := range []string{"ReleaseFailed", "Irreconcilable"} {
		if meta.IsStatusConditionTrue(ds.Status.Conditions, ct) {
			add("%s=True", ct)
		}
	}
	if len(rels) == 0 {
		add("no Helm release")
	} else if last := rels[len(rels)-1]; last.status != "deployed" {
		add("latest release %s is %s", last.secret, last.status)
	}

	// StatefulSet: exactly one, rolled out, with the config the status reports and the spec's volumes
	if got := sts[sv.name]; !slices.Equal(got, []string{sv.name}) {
		add("StatefulSets %v, want [%s]", got, sv.name)
	}
	set := find(s.sts, sv.name)
	if set != nil {
		st := set.Status
		if st.ObservedGeneration != set.Generation || st.Replicas != 1 || st.ReadyReplicas != 1 || st.UpdatedReplicas != 1 || st.CurrentRevision != st.UpdateRevision {
			add("StatefulSet not rolled out (generation %d observed %d, replicas %d ready %d updated %d, revision %s -> %s)",
				set.Generation, st.ObservedGeneration, st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
		}
		if h := set.Spec.Template.Annotations[annotationHash]; h == "" || h != ds.Status.ConfigHash {
			add("pod template config hash %q, status.configHash %q", h, ds.Status.ConfigHash)
		}
		sizes := map[string]string{"metadata": ds.Spec.Storage.MetadataSize, "content": ds.Spec.Storage.ContentSize,
			"cache": ds.Spec.Storage.CacheSize, "controlplane": ds.Spec.Storage.ControlPlaneSize}
		hasMetadata := false
		for _, tpl := range set.Spec.VolumeClaimTemplates {
			q := tpl.Spec.Resources.Requests[corev1.ResourceStorage]
			want, ok := sizes[tpl.Name]
			hasMetadata = hasMetadata || tpl.Name == "metadata"
			if !ok || q.String() != want {
				add("volume claim template %s is %s, spec says %q", tpl.Name, q.String(), want)
			}
			pvcName := tpl.Name + "-" + sv.name + "-0"
			pvc := find(s.pvcs, pvcName)
			switch {
			case pvc == nil:
				add("PVC %s missing", pvcName)
			case pvc.DeletionTimestamp != nil:
				add("PVC %s being deleted", pvcName)
			case pvc.Status.Phase != corev1.ClaimBound:
				add("PVC %s %s", pvcName, pvc.Status.Phase)
			default:
				if got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != want {
					add("PVC %s requests %s, spec says %q", pvcName, got.String(), want)
				}
			}
		}
		if !hasMetadata {
			add("no metadata volume claim template")
		}
		refs := secretRefs(&set.Spec.Template.Spec)
		wantRefs := []string{userJWTSecret, userAdminSecret}
		if !sv.userSecrets {
			wantRefs = []string{sv.name + "-jwt-secret", sv.name + "-admin-credentials"}
		}
		for _, name := range wantRefs {
			if !refs[name] {
				add("pod template does not use Secret %s (uses %v)", name, keys(refs))
			}
			if sec := find(s.secrets, name); sec == nil || sec.DeletionTimestamp != nil {
				add("Secret %s missing or being deleted", name)
			}
		}
	}
	if got := pods[sv.name]; !slices.Equal(got, []string{sv.name + "-0"}) {
		add("Pods %v, want [%s-0]", got, sv.name)
	} else if pod := find(s.pods, sv.name+"-0"); pod.DeletionTimestamp != nil || !podReady(pod) {
		add("pod %s not Ready (deleting=%v)", pod.Name, pod.DeletionTimestamp != nil)
	}

	// chart objects: exactly the Services the spec asks for, the NFS port of the spec
	wantSvcs := []string{sv.name + "-api", sv.name + "-file", sv.name + "-headless"}
	if ds.Spec.MetricsEnabled() {
		wantSvcs = append(wantSvcs, sv.name+"-metrics")
	}
	sort.Strings(wantSvcs)
	if got := svcs[sv.name]; !slices.Equal(got, wantSvcs) {
		add("Services %v, want %v", got, wantSvcs)
	}
	if file := find(s.svcs, sv.name+"-file"); file != nil {
		port := int32(-1)
		for _, p := range file.Spec.Ports {
			if p.Name == "nfs" {
				port = p.Port
			}
		}
		if port != ds.Spec.NFSServicePort() {
			add("Service %s-file serves NFS on %d, spec.nfsPort is %d", sv.name, port, ds.Spec.NFSServicePort())
		}
	}
	if got := cms[sv.name]; !slices.Equal(got, []string{sv.name + "-config"}) {
		add("ConfigMaps %v, want [%s-config]", got, sv.name)
	}
	if sv.percona {
		if pg := find(s.percona, sv.name+"-postgres"); pg == nil || pg.DeletionTimestamp != nil {
			add("PerconaPGCluster %s-postgres missing or being deleted", sv.name)
		}
	}
	return v
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// secretRefs are the Secrets a pod spec reads (env, envFrom, volumes).
func secretRefs(spec *corev1.PodSpec) map[string]bool {
	out := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				out[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				out[e.SecretRef.Name] = true
			}
		}
	}
	for _, vol := range spec.Volumes {
		if vol.Secret != nil {
			out[vol.Secret.SecretName] = true
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ledger remembers, from the first time it sees them, the objects that hold or open data and
// must outlive their server: the PVCs and generated credentials of servers without
// deleteWithServer, the Percona clusters without percona.deleteWithServer, the user's Secrets.
// Each must exist at every check with the same UID (not deleted and made again) and, for
// Secrets, the same data.
type ledger struct {
	mu   sync.Mutex
	objs map[string]recorded
	// changed are the UID or data changes seen between checks
	changed []violation
}

type recorded struct {
	server string
	uid    types.UID
	data   string // digest of a Secret's data
}

func newLedger() *ledger { return &ledger{objs: map[string]recorded{}} }

// kept lists the objects of s the ledger tracks, by "Kind/name".
func (r *run) kept(s *snapshot) map[string]recorded {
	out := map[string]recorded{}
	for i := range s.pvcs {
		p := &s.pvcs[i]
		if sv := r.serverByName(p.Labels[labelInstance]); sv != nil && !sv.deleteData && p.DeletionTimestamp == nil {
			out["PersistentVolumeClaim/"+p.Name] = recorded{server: sv.name, uid: p.UID}
		}
	}
	secretOwner := map[string]string{userJWTSecret: "(user)", userAdminSecret: "(user)"}
	for _, sv := range r.servers {
		if !sv.userSecrets && !sv.deleteData {
			for _, name := range generatedSecrets(sv.name) {
				secretOwner[name] = sv.name
			}
		}
	}
	for i := range s.secrets {
		sec := &s.secrets[i]
		if owner, ok := secretOwner[sec.Name]; ok && sec.DeletionTimestamp == nil {
			out["Secret/"+sec.Name] = recorded{server: owner, uid: sec.UID, data: digest(sec.Data)}
		}
	}
	for i := range s.percona {
		pg := &s.percona[i]
		if sv := r.serverByName(strings.TrimSuffix(pg.Name, "-postgres")); sv != nil && sv.percona && !sv.perconaDelete && pg.DeletionTimestamp == nil {
			out["PerconaPGCluster/"+pg.Name] = recorded{server: sv.name, uid: pg.UID}
		}
	}
	return out
}

// observe records what it has not seen yet and notes any change of what it has.
func (l *ledger) observe(r *run, s *snapshot) {
	cur := r.kept(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, rec := range cur {
		old, ok := l.objs[key]
		switch {
		case !ok:
			l.objs[key] = rec
		case old.uid != rec.uid:
			l.changed = append(l.changed, violation{server: rec.server, data: true, msg: fmt.Sprintf("%s was deleted and made again (uid %s -> %s)", key, old.uid, rec.uid)})
			l.objs[key] = rec
		case old.data != rec.data:
			l.changed = append(l.changed, violation{server: rec.server, data: true, msg: key + ": its data changed"})
			l.objs[key] = rec
		}
	}
}

// check lists the recorded objects that are gone, being deleted or changed.
func (l *ledger) check(s *snapshot) []violation {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := append([]violation(nil), l.changed...)
	add := func(rec recorded, format string, args ...any) {
		v = append(v, violation{server: rec.server, data: true, msg: fmt.Sprintf(format, args...)})
	}
	for key, rec := range l.objs {
		kind, name, _ := strings.Cut(key, "/")
		var obj metav1.Object
		switch kind {
		case "PersistentVolumeClaim":
			if p := find(s.pvcs, name); p != nil {
				obj = p
			}
		case "Secret":
			if sec := find(s.secrets, name); sec != nil {
				obj = sec
				if digest(sec.Data) != rec.data {
					add(rec, "%s: its data changed", key)
				}
			}
		case "PerconaPGCluster":
			if pg := find(s.percona, name); pg != nil {
				obj = pg
			}
		}
		switch {
		case obj == nil:
			add(rec, "%s is gone: lost", key)
		case obj.GetUID() != rec.uid:
			add(rec, "%s was deleted and made again", key)
		case obj.GetDeletionTimestamp() != nil:
			add(rec, "%s is being deleted", key)
		}
	}
	sort.Slice(v, func(i, j int) bool { return v[i].String() < v[j].String() })
	return v
}

// counts of the ledger, for the report.
func (l *ledger) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for key := range l.objs {
		kind, _, _ := strings.Cut(key, "/")
		out[kind]++
	}
	return out
}

func digest(data map[string][]byte) string {
	h := sha256.New()
	for _, k := range keys(boolKeys(data)) {
		h.Write([]byte(k + "=" + strconv.Itoa(len(data[k])) + ":"))
		h.Write(data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func boolKeys(m map[string][]byte) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}
