package helmext

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/internal/specs"
)

func TestNormalizeHelmConditions(t *testing.T) {
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	in := []metav1.Condition{
		{Type: specs.ConditionDeployed, Status: metav1.ConditionTrue, Reason: "InstallSuccessful", Message: "ok"},
		{Type: specs.ConditionIrreconcilable, Status: metav1.ConditionFalse},
		{Type: specs.ConditionReleaseFailed, Status: metav1.ConditionTrue, Reason: "UpgradeError", Message: strings.Repeat("x", 40000)},
	}
	existing := []metav1.Condition{
		{Type: specs.ConditionDeployed, Status: metav1.ConditionTrue, LastTransitionTime: earlier},
		{Type: specs.ConditionReleaseFailed, Status: metav1.ConditionFalse, LastTransitionTime: earlier},
	}
	out := NormalizeHelmConditions(in, existing, 7, now)
	assert.Len(t, out, 3)
	for _, c := range out {
		assert.Equal(t, int64(7), c.ObservedGeneration)
		assert.NotEmpty(t, c.Reason)
	}
	assert.Equal(t, earlier, out[0].LastTransitionTime, "same status keeps the transition time")
	assert.Equal(t, specs.ReasonAsExpected, out[1].Reason)
	assert.Equal(t, now, out[1].LastTransitionTime.Time)
	assert.Equal(t, now, out[2].LastTransitionTime.Time, "status changed")
	assert.LessOrEqual(t, len(out[2].Message), maxConditionMessage)
}
