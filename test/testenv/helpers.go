package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Bounds of every wait in the envtest suites.
const (
	Timeout = 20 * time.Second
	Tick    = 50 * time.Millisecond
)

// Eventually polls f until it returns nil, or fails the test with f's last error after Timeout.
func Eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(Tick)
	}
	t.Fatalf("%s: not reached within %s: %v", what, Timeout, err)
}

// GetServer reads a DittoServer.
func GetServer(t testing.TB, c client.Client, ns, name string) *v1alpha1.DittoServer {
	t.Helper()
	ds := &v1alpha1.DittoServer{}
	require.NoError(t, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ds))
	return ds
}

// Condition finds a condition of a DittoServer.
func Condition(ds *v1alpha1.DittoServer, t string) *metav1.Condition {
	return meta.FindStatusCondition(ds.Status.Conditions, t)
}

// WaitCondition waits until the condition has the status (and reason, when given) and its
// message contains every string in contains.
func WaitCondition(t testing.TB, c client.Client, ns, name, condType string, status metav1.ConditionStatus, reason string, contains ...string) *v1alpha1.DittoServer {
	t.Helper()
	var ds *v1alpha1.DittoServer
	Eventually(t, fmt.Sprintf("%s=%s (%s) %v", condType, status, reason, contains), func() error {
		ds = &v1alpha1.DittoServer{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ds); err != nil {
			return err
		}
		cond := Condition(ds, condType)
		if cond == nil {
			return fmt.Errorf("no %s condition; conditions: %v", condType, ds.Status.Conditions)
		}
		if cond.Status != status || (reason != "" && cond.Reason != reason) {
			return fmt.Errorf("%s is %s/%s: %s", condType, cond.Status, cond.Reason, cond.Message)
		}
		for _, s := range contains {
			if !strings.Contains(cond.Message, s) {
				return fmt.Errorf("%s message %q lacks %q", condType, cond.Message, s)
			}
		}
		return nil
	})
	return ds
}

// GetStatefulSet waits for a StatefulSet.
func GetStatefulSet(t testing.TB, c client.Client, ns, name string) *appsv1.StatefulSet {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	Eventually(t, "StatefulSet "+name, func() error {
		return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, sts)
	})
	return sts
}

// MarkStatefulSetReady plays the StatefulSet controller, which envtest does not run.
func MarkStatefulSetReady(t testing.TB, c client.Client, ns, name string) {
	t.Helper()
	Eventually(t, "StatefulSet status update", func() error {
		sts := &appsv1.StatefulSet{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, sts); err != nil {
			return err
		}
		want := *sts.Spec.Replicas
		sts.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: sts.Generation, Replicas: want, ReadyReplicas: want, AvailableReplicas: want,
			CurrentReplicas: want, UpdatedReplicas: want, CurrentRevision: "r1", UpdateRevision: "r1",
		}
		return c.Status().Update(context.Background(), sts)
	})
}

// WaitEvent waits until the object has an event of reason (the recorder writes events
// asynchronously, so one may land after the change the test waited for).
func WaitEvent(t testing.TB, c client.Client, ns, name, reason string) {
	t.Helper()
	Eventually(t, "an event "+reason+" on "+name, func() error {
		if len(Events(t, c, ns, name, reason)) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
}

// Events lists the messages of an object's events of one reason.
func Events(t testing.TB, c client.Client, ns, name, reason string) []string {
	t.Helper()
	list := &corev1.EventList{}
	require.NoError(t, c.List(context.Background(), list, client.InNamespace(ns)))
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// UpdateServer applies mutate to a fresh copy of a DittoServer, retrying write conflicts with
// the operator's own writes.
func UpdateServer(t testing.TB, c client.Client, ns, name string, mutate func(*v1alpha1.DittoServer)) *v1alpha1.DittoServer {
	t.Helper()
	var ds *v1alpha1.DittoServer
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds = GetServer(t, c, ns, name)
		mutate(ds)
		return c.Update(context.Background(), ds)
	}))
	return ds
}

// ReconcileCount reads controller-runtime's reconcile counter of one controller.
func ReconcileCount(t testing.TB, controller string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// WaitGone waits until the DittoServer is gone (its finalizers removed).
func WaitGone(t testing.TB, c client.Client, ns, name string) {
	t.Helper()
	Eventually(t, name+" deleted", func() error {
		err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.DittoServer{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %w", err)
	})
}
