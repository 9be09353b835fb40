package hybrid

import (
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// TestSpecOrHelmStatusChanged: which updates of a DittoServer bring the Go controller back.
func TestSpecOrHelmStatusChanged(t *testing.T) {
	base := func() *v1alpha1.DittoServer {
		return &v1alpha1.DittoServer{ObjectMeta: metav1.ObjectMeta{Name: "s", Generation: 1,
			Finalizers: []string{specs.Finalizer, specs.HelmUninstallFinalizer}},
			Status: v1alpha1.DittoServerStatus{Conditions: []metav1.Condition{{Type: specs.ConditionDeployed, Status: metav1.ConditionTrue}}}}
	}
	now := metav1.Now()
	for name, tc := range map[string]struct {
		old, new func(*v1alpha1.DittoServer)
		want     bool
	}{
		"spec change":               {new: func(d *v1alpha1.DittoServer) { d.Generation = 2 }, want: true},
		"deletion":                  {new: func(d *v1alpha1.DittoServer) { d.DeletionTimestamp = &now }, want: true},
		"a finalizer removed":       {new: func(d *v1alpha1.DittoServer) { d.Finalizers = d.Finalizers[:1] }, want: true},
		"Helm condition changed":    {new: func(d *v1alpha1.DittoServer) { d.Status.Conditions[0].Status = metav1.ConditionFalse }, want: true},
		"our finalizers added":      {old: func(d *v1alpha1.DittoServer) { d.Finalizers = nil }, want: false},
		"our own status write":      {new: func(d *v1alpha1.DittoServer) { d.Status.Phase = "Running" }, want: false},
		"a Helm condition's reason": {new: func(d *v1alpha1.DittoServer) { d.Status.Conditions[0].Reason = "UpgradeSuccessful" }, want: false},
	} {
		o, n := base(), base()
		if tc.old != nil {
			tc.old(o)
		}
		if tc.new != nil {
			tc.new(n)
		}
		got := specOrHelmStatusChanged().Update(event.UpdateEvent{ObjectOld: o, ObjectNew: n})
		assert.Equal(t, tc.want, got, name)
	}
}
