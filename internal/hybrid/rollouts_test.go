package hybrid

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

func key(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }

// TestRolloutGate: at most max servers hold a slot; the others wait in line and are woken in
// order when a slot frees; a slot held past the timeout no longer counts; a deleted server
// leaves the line.
func TestRolloutGate(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newRolloutGate(2, time.Minute)
	g.now = func() time.Time { return now }

	ok, _ := g.acquire(key("a"))
	assert.True(t, ok)
	ok, _ = g.acquire(key("b"))
	assert.True(t, ok)
	ok, msg := g.acquire(key("c"))
	assert.False(t, ok, "two slots, both held")
	assert.Contains(t, msg, "2 of 2 in use (--max-concurrent-rollouts), place 1 in line")
	ok, msg = g.acquire(key("d"))
	assert.False(t, ok)
	assert.Contains(t, msg, "place 2 in line")
	ok, _ = g.acquire(key("a"))
	assert.True(t, ok, "a holder keeps its slot")
	_, msg = g.acquire(key("c"))
	assert.Contains(t, msg, "place 1 in line", "asking again keeps the place")

	g.release(key("a"))
	require.Len(t, g.wake, 1, "one slot freed: the first in line is woken")
	assert.Equal(t, "c", (<-g.wake).Object.GetName())
	ok, _ = g.acquire(key("c"))
	assert.True(t, ok)
	ok, _ = g.acquire(key("d"))
	assert.False(t, ok, "b and c hold the slots")

	now = now.Add(time.Minute)
	ok, _ = g.acquire(key("d"))
	assert.True(t, ok, "b's and c's slots expired: a stuck rollout does not stop the others for good")

	g.release(key("x")) // not holding: nothing happens
	assert.Empty(t, g.wake)
	_, _ = g.acquire(key("e"))
	_, _ = g.acquire(key("f"))
	ok, _ = g.acquire(key("g"))
	assert.False(t, ok)
	g.release(key("g")) // deleted while waiting
	assert.NotContains(t, g.waiting, key("g"))
}

func sts(identity, hash string) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
	if identity != "" {
		s.Annotations[specs.AnnotationOperator] = identity
	}
	s.Spec.Template.Annotations = map[string]string{specs.AnnotationConfigHash: hash}
	s.Spec.Template.Spec.Containers = []corev1.Container{{Name: "dittofs", Image: "img"}}
	return s
}

// TestGatedRollout: only a template change on a StatefulSet another operator identity (or an
// operator before the annotation) wrote is bounded.
func TestGatedRollout(t *testing.T) {
	cases := map[string]struct {
		existing *appsv1.StatefulSet
		want     bool
	}{
		"same identity, new template (a spec or Secret change)":    {sts("B", "old"), false},
		"other identity, same template (nothing rendered changed)": {sts("A", "new"), false},
		"other identity, new template (an operator change)":        {sts("A", "old"), true},
		"no identity (an older operator), new template":            {sts("", "old"), true},
		"no identity, same template":                               {sts("", "new"), false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := gatedRollout(tc.existing, sts("B", "new"), "B")
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestOperatorIdentity: the identity follows the build and every operator-wide input of the
// rendering, and not the order of the override values.
func TestOperatorIdentity(t *testing.T) {
	base := OperatorIdentity("0.1.0 abc", []byte("w"), map[string]string{"a": "1", "b": "2"})
	assert.Equal(t, base, OperatorIdentity("0.1.0 abc", []byte("w"), map[string]string{"b": "2", "a": "1"}))
	assert.NotEqual(t, base, OperatorIdentity("0.1.1 abc", []byte("w"), map[string]string{"a": "1", "b": "2"}))
	assert.NotEqual(t, base, OperatorIdentity("0.1.0 abc", []byte("w2"), map[string]string{"a": "1", "b": "2"}))
	assert.NotEqual(t, base, OperatorIdentity("0.1.0 abc", []byte("w"), map[string]string{"a": "1", "b": "3"}))
	t.Setenv(specs.EnvRelatedImage, "registry.example.com/dittofs:v0.29.0")
	assert.NotEqual(t, base, OperatorIdentity("0.1.0 abc", []byte("w"), map[string]string{"a": "1", "b": "2"}), "a new default image")
}
