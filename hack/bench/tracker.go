package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

const configHashAnnotation = "dittofs.dittofs.com/config-hash"

// crState is what the benchmark saw of one DittoServer and its objects, with the time of each
// first observation (informer events of the benchmark's own watches, not polling).
type crState struct {
	applied time.Time // just before the create request
	// readyAt[generation]: first time Ready=True with observedGeneration == generation
	readyAt map[int64]time.Time
	// deployedAt: first time the Helm reconciler's Deployed=True was seen
	deployedAt time.Time
	// stsSeen: first time the StatefulSet existed; hashSeen[h]: first time its pod template
	// carried config hash h; rolledAt[h]: first time the StatefulSet reported the template with h
	// rolled out and ready (observedGeneration current, update == current revision, 1 ready)
	stsSeen   time.Time
	hashSeen  map[string]time.Time
	rolledAt  map[string]time.Time
	hash      string
	firstHash string
	// cmChanged: last time the ConfigMap's data changed
	cmChanged time.Time
	cmData    string
}

type tracker struct {
	mu  sync.Mutex
	crs map[string]*crState
	// focus is the server whose every observed change goes to the timeline file
	focus    string
	timeline *os.File
	start    time.Time
}

// followTo writes every observed change of the server key to path.
func (t *tracker) followTo(key, path string, start time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.focus, t.timeline, t.start = key, f, start
	return nil
}

func (t *tracker) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timeline != nil {
		_ = t.timeline.Close()
		t.timeline = nil
	}
}

// mark writes a phase marker to the timeline.
func (t *tracker) mark(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timeline != nil {
		_, _ = fmt.Fprintf(t.timeline, "%9.3f ---- %s\n", time.Since(t.start).Seconds(), what)
	}
}

// note writes a line to the timeline (under the lock).
func (t *tracker) note(key string, at time.Time, format string, args ...any) {
	if t.timeline == nil || key != t.focus {
		return
	}
	_, _ = fmt.Fprintf(t.timeline, "%9.3f %s\n", at.Sub(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func newTracker() *tracker { return &tracker{crs: map[string]*crState{}} }

func (t *tracker) get(key string) *crState {
	s, ok := t.crs[key]
	if !ok {
		s = &crState{readyAt: map[int64]time.Time{}, hashSeen: map[string]time.Time{}, rolledAt: map[string]time.Time{}}
		t.crs[key] = s
	}
	return s
}

func (t *tracker) setApplied(key string, at time.Time) {
	t.mu.Lock()
	t.get(key).applied = at
	t.mu.Unlock()
}

// with runs f on the state of key under the lock.
func (t *tracker) with(key string, f func(*crState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.get(key))
}

func (t *tracker) onServer(obj any) {
	ds, ok := obj.(*v1alpha1.DittoServer)
	if !ok {
		return
	}
	now := time.Now()
	key := ds.Namespace + "/" + ds.Name
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key)
	if t.timeline != nil && key == t.focus {
		var conds []string
		for _, c := range ds.Status.Conditions {
			conds = append(conds, fmt.Sprintf("%s=%s/%s@%d", c.Type, c.Status, c.Reason, c.ObservedGeneration))
		}
		t.note(key, now, "DittoServer rv=%s gen=%d finalizers=%d phase=%s replicas=%d/%d/%d hash=%.8s conds=[%s]",
			ds.ResourceVersion, ds.Generation, len(ds.Finalizers), ds.Status.Phase, ds.Status.Replicas, ds.Status.ReadyReplicas,
			ds.Status.AvailableReplicas, ds.Status.ConfigHash, strings.Join(conds, " "))
	}
	if c := meta.FindStatusCondition(ds.Status.Conditions, "Ready"); c != nil && c.Status == metav1.ConditionTrue &&
		c.ObservedGeneration == ds.Generation {
		if _, seen := s.readyAt[ds.Generation]; !seen {
			s.readyAt[ds.Generation] = now
		}
	}
	if s.deployedAt.IsZero() && meta.IsStatusConditionTrue(ds.Status.Conditions, "Deployed") {
		s.deployedAt = now
	}
}

func (t *tracker) onStatefulSet(obj any) {
	sts, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return
	}
	now := time.Now()
	key := sts.Namespace + "/" + sts.Name
	h := sts.Spec.Template.Annotations[configHashAnnotation]
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key)
	st := sts.Status
	t.note(key, now, "StatefulSet rv=%s gen=%d hash=%.8s status: observedGen=%d replicas=%d ready=%d current=%d updated=%d available=%d rev=%s/%s",
		sts.ResourceVersion, sts.Generation, h, st.ObservedGeneration, st.Replicas, st.ReadyReplicas, st.CurrentReplicas,
		st.UpdatedReplicas, st.AvailableReplicas, st.CurrentRevision, st.UpdateRevision)
	if s.stsSeen.IsZero() {
		s.stsSeen, s.firstHash = now, h
	}
	s.hash = h
	if _, seen := s.hashSeen[h]; !seen {
		s.hashSeen[h] = now
	}
	if st.ObservedGeneration == sts.Generation && st.UpdateRevision != "" && st.UpdateRevision == st.CurrentRevision &&
		st.ReadyReplicas >= 1 && st.UpdatedReplicas >= 1 {
		if _, seen := s.rolledAt[h]; !seen {
			s.rolledAt[h] = now
		}
	}
}

func (t *tracker) onConfigMap(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok || len(cm.Name) < len("-config") || cm.Name[len(cm.Name)-len("-config"):] != "-config" {
		return
	}
	key := cm.Namespace + "/" + cm.Name[:len(cm.Name)-len("-config")]
	data := fmt.Sprint(cm.Data)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(key)
	t.note(key, now, "ConfigMap rv=%s dataChanged=%v", cm.ResourceVersion, s.cmData != data)
	if s.cmData != data {
		s.cmData, s.cmChanged = data, now
	}
}

func handlerFor(f func(any)) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { f(obj) },
		UpdateFunc: func(_, obj any) { f(obj) },
	}
}

// startWatches starts the benchmark's informers on DittoServers, StatefulSets and the
// operator's ConfigMaps (direct to the API server, not through the tracer).
func startWatches(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, t *tracker) error {
	sel := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/part-of": "dittofs"})
	c, err := cache.New(cfg, cache.Options{
		Scheme:           scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Label: sel},
		},
	})
	if err != nil {
		return err
	}
	for obj, f := range map[client.Object]func(any){
		&v1alpha1.DittoServer{}: t.onServer,
		&appsv1.StatefulSet{}:   t.onStatefulSet,
		&corev1.ConfigMap{}:     t.onConfigMap,
	} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(handlerFor(f)); err != nil {
			return err
		}
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return fmt.Errorf("the benchmark's watches did not sync")
	}
	return nil
}
