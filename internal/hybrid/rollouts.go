package hybrid

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// DefaultRolloutSlotTimeout frees the slot of a rollout that has not finished by then (a pod
// that does not become ready must not stop the others for good).
const DefaultRolloutSlotTimeout = 10 * time.Minute

// rolloutRecheck is how often a server waiting for a slot looks again by itself; it is woken
// earlier when a slot frees.
const rolloutRecheck = 30 * time.Second

// rolloutGate bounds the pod restarts the operator causes by itself (--max-concurrent-rollouts):
// a new operator version, new operator-wide override values or a new default DittoFS image
// changes the pod template of many servers at once, and each such server waits for a slot
// before its StatefulSet gets the new template. A slot is held until the server's StatefulSet
// has rolled out, or for at most the slot timeout. Which rollouts count: a template change on a
// StatefulSet last written by another operator identity (AnnotationOperator: its build and the
// settings that change every server's rendering), or by an operator before this annotation.
// Rollouts of StatefulSets this identity wrote (spec changes, Secret rotations) are not bounded.
// Slots live in memory: an operator restart forgets them, so at most twice the bound roll then.
type rolloutGate struct {
	max     int
	timeout time.Duration
	now     func() time.Time

	mu    sync.Mutex
	slots map[types.NamespacedName]time.Time
	// waiting are the servers refused a slot, first come first woken.
	waiting []types.NamespacedName
	// wake enqueues a waiting server (a channel source of the Go controller).
	wake chan event.GenericEvent
}

func newRolloutGate(max int, timeout time.Duration) *rolloutGate {
	if timeout <= 0 {
		timeout = DefaultRolloutSlotTimeout
	}
	return &rolloutGate{max: max, timeout: timeout, now: time.Now, slots: map[types.NamespacedName]time.Time{},
		wake: make(chan event.GenericEvent, 4096)}
}

// source is the controller's source of wake-ups.
func (g *rolloutGate) source() source.Source {
	return source.Channel(g.wake, &handler.EnqueueRequestForObject{})
}

// acquire reports whether server may start its rollout now; a server that already holds a slot
// keeps it. Refused, it waits in line and the message says so.
func (g *rolloutGate) acquire(server types.NamespacedName) (bool, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for key, since := range g.slots {
		if now.Sub(since) >= g.timeout {
			delete(g.slots, key) // expired: counts no more
		}
	}
	if _, ok := g.slots[server]; ok {
		return true, ""
	}
	if len(g.slots) < g.max {
		g.slots[server] = now
		g.dropWaiting(server)
		return true, ""
	}
	pos := g.enqueue(server)
	return false, fmt.Sprintf("the operator changed this server's pod template (a new operator version or operator-wide setting); it waits for a rollout slot, %d of %d in use (--max-concurrent-rollouts), place %d in line; the pod keeps running on its current template meanwhile",
		len(g.slots), g.max, pos)
}

// release frees server's slot (its rollout is done, or it is deleted) and wakes the next in
// line.
func (g *rolloutGate) release(server types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dropWaiting(server)
	if _, ok := g.slots[server]; !ok {
		return
	}
	delete(g.slots, server)
	free := g.max - len(g.slots)
	for i := 0; i < free && i < len(g.waiting); i++ {
		ds := &v1alpha1.DittoServer{}
		ds.Namespace, ds.Name = g.waiting[i].Namespace, g.waiting[i].Name
		select {
		case g.wake <- event.GenericEvent{Object: ds}:
		default: // full: its recheck comes anyway
		}
	}
}

func (g *rolloutGate) enqueue(server types.NamespacedName) int {
	for i, key := range g.waiting {
		if key == server {
			return i + 1
		}
	}
	g.waiting = append(g.waiting, server)
	return len(g.waiting)
}

func (g *rolloutGate) dropWaiting(server types.NamespacedName) {
	for i, key := range g.waiting {
		if key == server {
			g.waiting = append(g.waiting[:i], g.waiting[i+1:]...)
			return
		}
	}
}

// gatedRollout reports whether applying desired over existing is a rollout the gate bounds: the
// pod template changes and existing was written by another operator identity.
func gatedRollout(existing, desired *appsv1.StatefulSet, identity string) (bool, error) {
	if existing.Annotations[specs.AnnotationOperator] == identity {
		return false, nil
	}
	have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&existing.Spec.Template)
	if err != nil {
		return false, err
	}
	want, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&desired.Spec.Template)
	if err != nil {
		return false, err
	}
	return !specs.FieldsMatch(want, have, true), nil
}

// OperatorIdentity is the value of AnnotationOperator for an operator built as build (version and
// commit) running with watches.yaml watches and the operator-wide override values: everything
// that can change the pod template of every server at once, the default images included.
func OperatorIdentity(build string, watches []byte, overrides map[string]string) string {
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s\n%s\n%s\n", build, specs.DefaultImage(), specs.PostgresClientImage())
	_, _ = h.Write(watches)
	for _, k := range keys {
		_, _ = fmt.Fprintf(h, "\n%s=%s", k, overrides[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
