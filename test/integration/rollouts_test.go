package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/hybrid"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestOperatorChangeRollsBounded: servers converged by one operator identity; an operator with
// another identity whose rendering changes every pod template (here: new operator-wide override
// values) rolls them --max-concurrent-rollouts at a time, the others waiting with
// Progressing=True RolloutQueued on their current template; each finished rollout lets the next
// one start. A server's own spec change on a StatefulSet the new operator already wrote is not
// held back, even with every slot busy. An identity change that changes no template writes no
// StatefulSet.
func TestOperatorChangeRollsBounded(t *testing.T) {
	const n, bound = 5, 2
	ns := newNamespace(t)
	userSecrets(t, ns)
	scoped := testenv.ManagerConfig{Namespaces: []string{ns}}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
	}

	mgr := env.StartManagerWith(t, scoped, func(o *hybrid.Options) { o.Identity, o.MaxConcurrentRollouts = "A", bound })
	for _, name := range names {
		require.NoError(t, k8s.Create(ctx(), basicServer(ns, name)))
	}
	for _, name := range names {
		markStatefulSetReady(t, ns, name)
		waitCondition(t, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	}
	mgr.Stop(t)
	stsOf := func(name string) *appsv1.StatefulSet { return testenv.GetStatefulSet(t, k8s, ns, name) }
	before := map[string]*appsv1.StatefulSet{}
	for _, name := range names {
		before[name] = stsOf(name)
		require.Equal(t, "A", before[name].Annotations[specs.AnnotationOperator])
	}

	// Another identity, same rendering: nothing is written.
	mgr = env.StartManagerWith(t, scoped, func(o *hybrid.Options) { o.Identity, o.MaxConcurrentRollouts = "A2", bound })
	for _, name := range names {
		waitCondition(t, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	}
	time.Sleep(2 * time.Second)
	for _, name := range names {
		assert.Equal(t, before[name].ResourceVersion, stsOf(name).ResourceVersion, "%s: StatefulSet written though nothing rendered changed", name)
	}
	mgr.Stop(t)

	// Another identity and a rendering that changes every template.
	mgr = env.StartManagerWith(t, scoped, func(o *hybrid.Options) {
		o.Identity, o.MaxConcurrentRollouts = "B", bound
		o.OverrideValues = map[string]string{"logging.level": "DEBUG"}
	})
	defer mgr.Stop(t)
	rolled := func() (done, rolling []string) {
		for _, name := range names {
			s := stsOf(name)
			if s.Annotations[specs.AnnotationOperator] != "B" {
				continue
			}
			if s.Status.ObservedGeneration == s.Generation {
				done = append(done, name)
			} else {
				rolling = append(rolling, name)
			}
		}
		return done, rolling
	}
	maxRolling := 0
	for round := 0; ; round++ {
		require.Less(t, round, 2*n, "all servers rolled in at most %d rounds", 2*n)
		var done, rolling []string
		testenv.Eventually(t, "the next rollouts start", func() error {
			done, rolling = rolled()
			if len(done)+len(rolling) < n && len(rolling) < bound {
				return fmt.Errorf("%d done, %d rolling", len(done), len(rolling))
			}
			return nil
		})
		time.Sleep(time.Second) // no more than the bound start meanwhile
		done, rolling = rolled()
		maxRolling = max(maxRolling, len(rolling))
		require.LessOrEqual(t, len(rolling), bound, "rolling at once: %v", rolling)
		if len(done) == n {
			break
		}
		if len(done)+len(rolling) < n {
			// the others wait on their current template, and say so
			for _, name := range names {
				s := stsOf(name)
				if s.Annotations[specs.AnnotationOperator] == "B" {
					continue
				}
				assert.Equal(t, before[name].Spec.Template.Annotations[specs.AnnotationConfigHash], s.Spec.Template.Annotations[specs.AnnotationConfigHash])
				ds := testenv.GetServer(t, k8s, ns, name)
				if c := testenv.Condition(ds, specs.ConditionProgressing); c != nil && c.Reason == specs.ReasonRolloutQueued {
					assert.Contains(t, c.Message, "--max-concurrent-rollouts")
				}
			}
		}
		if round == 1 && len(done) > 0 {
			// Every slot busy: a server the new operator already rolled takes a spec change at once.
			busy := done[0]
			testenv.UpdateServer(t, k8s, ns, busy, func(ds *v1alpha1.DittoServer) {
				ds.Spec.Logging = &v1alpha1.LoggingSpec{Format: "text"}
			})
			gen := stsOf(busy).Generation
			testenv.Eventually(t, "the spec change applied without a slot", func() error {
				if s := stsOf(busy); s.Generation == gen {
					return fmt.Errorf("not applied")
				}
				return nil
			})
			markStatefulSetReady(t, ns, busy)
		}
		for _, name := range rolling {
			markStatefulSetReady(t, ns, name) // the StatefulSet controller's part
		}
	}
	assert.Equal(t, bound, maxRolling)
	for _, name := range names {
		waitCondition(t, ns, name, specs.ConditionReady, metav1.ConditionTrue, "")
	}
}
