package hybrid

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// TestStatusKey: two builds of the same status differ only in transition times (build sets
// them to now); they must count as the same write, and any other difference must not.
func TestStatusKey(t *testing.T) {
	st := func(ready metav1.ConditionStatus, at time.Time, replicas int32) v1alpha1.DittoServerStatus {
		return v1alpha1.DittoServerStatus{ObservedGeneration: 2, ReadyReplicas: replicas, Conditions: []metav1.Condition{
			{Type: ConditionReady, Status: ready, Reason: ReasonAllReady, LastTransitionTime: metav1.NewTime(at)},
		}}
	}
	now := time.Now()
	a := st(metav1.ConditionTrue, now, 1)
	assert.Equal(t, statusKey(a), statusKey(st(metav1.ConditionTrue, now.Add(time.Second), 1)))
	assert.NotEqual(t, statusKey(a), statusKey(st(metav1.ConditionFalse, now, 1)))
	assert.NotEqual(t, statusKey(a), statusKey(st(metav1.ConditionTrue, now, 0)))
	assert.Equal(t, metav1.NewTime(now), a.Conditions[0].LastTransitionTime, "the status itself is left alone")
}
