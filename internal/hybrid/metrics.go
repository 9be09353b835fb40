package hybrid

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
	"github.com/dittofs/dittofs-operator/internal/specs"
)

// Per-server metrics, read from the DittoServers' status at scrape time (the way
// kube-state-metrics works): nothing to keep in step with reconciles, correct right after an
// operator restart, and a deleted server's series go with it. Labels are bounded: one series
// per server for ready, one per server and condition type for condition.
var (
	serverReadyDesc = prometheus.NewDesc("dittofs_server_ready",
		"1 when the DittoServer's Ready condition is True (it answers and serves what its spec declares), else 0.",
		[]string{"namespace", "name"}, nil)
	serverConditionDesc = prometheus.NewDesc("dittofs_server_condition",
		"1 for each condition of a DittoServer's status, with its current status and reason.",
		[]string{"namespace", "name", "type", "status", "reason"}, nil)
)

// Durations, observed when a status write records the end of what they measure. The start is
// the creation timestamp or the condition's lastTransitionTime, both kept in the API server,
// so a rollout that spans an operator restart is measured in full.
var (
	timeToReady = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "dittofs_server_time_to_ready_seconds",
		Help:    "From a DittoServer's creation to its first Ready=True (servers whose first status this operator process wrote).",
		Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
	})
	rolloutDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dittofs_server_rollout_duration_seconds",
		Help:    "From the start of a DittoServer's rollout (Progressing=True) to its end, by what was rolling out (RollingOut: a new pod template or replica count; ExpandingVolumes: volumes grown by re-creating the StatefulSet).",
		Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
	}, []string{"reason"})
)

func init() {
	metrics.Registry.MustRegister(timeToReady, rolloutDuration)
	for _, reason := range []string{specs.ReasonRollingOut, specs.ReasonExpandingVolumes} {
		rolloutDuration.WithLabelValues(reason) // exported (empty) before the first rollout
	}
}

// observeDurations records the durations a status write ends: a creation reaching Ready, a
// rollout finishing. A creation's own rollout is part of its time to Ready, not a rollout.
func (r *Reconciler) observeDurations(ds *v1alpha1.DittoServer, desired v1alpha1.DittoServerStatus, now time.Time) {
	ready := conditionTransition(ds, desired, specs.ConditionReady)
	if ready.old == nil {
		r.creating.Store(ds.UID, struct{}{}) // the server's first status
	}
	_, creating := r.creating.Load(ds.UID)
	progressing := conditionTransition(ds, desired, specs.ConditionProgressing)
	if old, p := progressing.old, progressing.now; !creating && old != nil && p != nil &&
		old.Status == metav1.ConditionTrue && p.Status == metav1.ConditionFalse &&
		(old.Reason == specs.ReasonRollingOut || old.Reason == specs.ReasonExpandingVolumes) {
		rolloutDuration.WithLabelValues(old.Reason).Observe(now.Sub(old.LastTransitionTime.Time).Seconds())
	}
	if creating && ready.now != nil &&
		ready.now.Status == metav1.ConditionTrue && !ready.wasTrue() {
		timeToReady.Observe(now.Sub(ds.CreationTimestamp.Time).Seconds())
		r.creating.Delete(ds.UID)
	}
}

// listTimeout bounds a scrape's read of the cache (in memory; it only waits while the cache
// is not started yet).
const listTimeout = 5 * time.Second

// statusCollector reports dittofs_server_ready and dittofs_server_condition.
type statusCollector struct{ reader client.Reader }

func (c statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serverReadyDesc
	ch <- serverConditionDesc
}

func (c statusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	list := &v1alpha1.DittoServerList{}
	// Read-only: the cache's own objects, not a copy of each (1000 servers were ~5 MB a scrape).
	if err := c.reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(serverReadyDesc, err)
		return
	}
	for i := range list.Items {
		ds := &list.Items[i]
		ready := 0.0
		if meta.IsStatusConditionTrue(ds.Status.Conditions, specs.ConditionReady) {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(serverReadyDesc, prometheus.GaugeValue, ready, ds.Namespace, ds.Name)
		for _, cond := range ds.Status.Conditions {
			ch <- prometheus.MustNewConstMetric(serverConditionDesc, prometheus.GaugeValue, 1,
				ds.Namespace, ds.Name, cond.Type, string(cond.Status), cond.Reason)
		}
	}
}

// registered is the collector in controller-runtime's registry (the operator's /metrics). A
// process runs one manager; tests start several, one after the other, and the latest one's
// cache is the one to read.
var (
	registeredMu sync.Mutex
	registered   prometheus.Collector
)

func registerStatusMetrics(reader client.Reader) error {
	registeredMu.Lock()
	defer registeredMu.Unlock()
	if registered != nil {
		metrics.Registry.Unregister(registered)
	}
	c := statusCollector{reader: reader}
	if err := metrics.Registry.Register(c); err != nil {
		return err
	}
	registered = c
	return nil
}
