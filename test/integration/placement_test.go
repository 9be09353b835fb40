package integration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
	"github.com/dittofs/dittofs-operator/test/testenv"
)

// TestPodPlacement: the scheduling and pod metadata fields reach the StatefulSet's pod
// template, a change to them rolls it, and removing them removes them; keys the operator owns
// are refused with the field named, and nothing is rolled out meanwhile.
func TestPodPlacement(t *testing.T) {
	mgr := env.StartManager(t)
	defer mgr.Stop(t)
	ns := newNamespace(t)
	userSecrets(t, ns)
	ds := basicServer(ns, "placed")
	ds.Spec.NodeSelector = map[string]string{"disk": "nvme"}
	ds.Spec.Tolerations = []corev1.Toleration{{Key: "storage", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	ds.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "storage"}}}}
	ds.Spec.PriorityClassName = "system-cluster-critical"
	ds.Spec.PodLabels = map[string]string{"team": "storage"}
	ds.Spec.PodAnnotations = map[string]string{"backup.velero.io/backup-volumes": "metadata"}
	ds.Spec.Env = []corev1.EnvVar{{Name: "TZ", Value: "UTC"}}
	require.NoError(t, k8s.Create(ctx(), ds))

	pod := getStatefulSet(t, ns, "placed").Spec.Template
	assert.Equal(t, ds.Spec.NodeSelector, pod.Spec.NodeSelector)
	assert.Equal(t, ds.Spec.Tolerations, pod.Spec.Tolerations)
	assert.Equal(t, ds.Spec.TopologySpreadConstraints, pod.Spec.TopologySpreadConstraints)
	assert.Equal(t, "system-cluster-critical", pod.Spec.PriorityClassName)
	assert.Equal(t, "storage", pod.Labels["team"])
	assert.Equal(t, "metadata", pod.Annotations["backup.velero.io/backup-volumes"])
	assert.Contains(t, pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "TZ", Value: "UTC"})
	markStatefulSetReady(t, ns, "placed")
	waitCondition(t, ns, "placed", specs.ConditionReady, metav1.ConditionTrue, "")

	testenv.UpdateServer(t, k8s, ns, "placed", func(ds *v1alpha1.DittoServer) {
		ds.Spec.NodeSelector = nil
		ds.Spec.Tolerations = nil
		ds.Spec.PodAnnotations = map[string]string{"backup.velero.io/backup-volumes": "metadata,controlplane"}
	})
	eventually(t, "the pod template follows the spec", func() error {
		pod := getStatefulSet(t, ns, "placed").Spec.Template
		if len(pod.Spec.NodeSelector) != 0 || len(pod.Spec.Tolerations) != 0 || pod.Annotations["backup.velero.io/backup-volumes"] != "metadata,controlplane" {
			return fmt.Errorf("nodeSelector %v, tolerations %v, annotations %v", pod.Spec.NodeSelector, pod.Spec.Tolerations, pod.Annotations)
		}
		return nil
	})

	before := getStatefulSet(t, ns, "placed").Spec.Template
	testenv.UpdateServer(t, k8s, ns, "placed", func(ds *v1alpha1.DittoServer) {
		ds.Spec.PodLabels = map[string]string{specs.LabelInstance: "someone-else"}
	})
	got := waitCondition(t, ns, "placed", specs.ConditionReady, metav1.ConditionFalse, specs.ReasonInvalidSpec)
	assert.Contains(t, condition(got, specs.ConditionReady).Message, `spec.podLabels: "app.kubernetes.io/instance" is set by the operator`)
	assert.Equal(t, before, getStatefulSet(t, ns, "placed").Spec.Template, "a refused spec rolls nothing out")
}
