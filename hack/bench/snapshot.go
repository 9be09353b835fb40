package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// Measurements that several phases take: the operator's counters and /proc, its quiet, the
// resourceVersions of the objects it could write and the Ready servers.

type snapshot struct {
	m    opMetrics
	p    procStat
	tr   traceSnapshot
	kcm  map[string]float64
	sch  map[string]float64
	time time.Time
}

func take(op *operator, tr *tracer, kcmPort, schedPort int) (snapshot, error) {
	s := snapshot{time: time.Now()}
	var err error
	if s.m, err = scrapeOperator(op.metricsPort); err != nil {
		return s, err
	}
	if s.p, err = readProc(op.pid); err != nil {
		return s, err
	}
	s.tr = tr.snapshot()
	if kcmPort > 0 {
		s.kcm, _ = componentRequests(kcmPort)
	}
	if schedPort > 0 {
		s.sch, _ = componentRequests(schedPort)
	}
	return s, nil
}

func subMaps(a, b map[string]float64) map[string]float64 {
	if a == nil || b == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			out[k] = round3(d)
		}
	}
	return out
}

// waitQuiet polls the operator's request counter until it has not moved for quiet. It returns
// the last metrics, the time of the last change (at least since) and whether it got quiet
// before max.
func waitQuiet(ctx context.Context, op *operator, quiet, max time.Duration, since time.Time) (opMetrics, time.Time, bool, error) {
	deadline := time.Now().Add(max)
	lastChange := since
	lastTotal := -1.0
	var m opMetrics
	for {
		if !op.alive() {
			return m, lastChange, false, fmt.Errorf("the operator exited\n%s", tail(op.log, 30))
		}
		cur, err := scrapeOperator(op.metricsPort)
		now := time.Now()
		if err == nil {
			m = cur
			if t := cur.totalRequests(); t != lastTotal {
				if lastTotal >= 0 {
					lastChange = now
				}
				lastTotal = t
			}
			if now.Sub(lastChange) >= quiet {
				return m, lastChange, true, nil
			}
		}
		if now.After(deadline) {
			return m, lastChange, false, nil
		}
		select {
		case <-ctx.Done():
			return m, lastChange, false, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// resourceVersions lists the objects of the benchmark's namespaces the operator could write
// (direct to the API server).
func resourceVersions(ctx context.Context, k8s client.Client, nns, n int) (map[string]string, error) {
	out := map[string]string{}
	for i := 0; i < nns; i++ {
		ns := client.InNamespace(nsName(n, i))
		lists := map[string]client.ObjectList{
			"DittoServer": &v1alpha1.DittoServerList{}, "StatefulSet": &appsv1.StatefulSetList{},
			"ConfigMap": &corev1.ConfigMapList{}, "Service": &corev1.ServiceList{}, "Secret": &corev1.SecretList{},
		}
		for kind, l := range lists {
			if err := k8s.List(ctx, l, ns); err != nil {
				return nil, err
			}
			items, err := metaItems(l)
			if err != nil {
				return nil, err
			}
			for _, o := range items {
				out[kind+" "+o.GetNamespace()+"/"+o.GetName()] = o.GetResourceVersion()
			}
		}
	}
	return out, nil
}

func metaItems(l client.ObjectList) ([]metav1.Object, error) {
	items, err := apimeta.ExtractList(l)
	if err != nil {
		return nil, fmt.Errorf("unexpected list %T: %w", l, err)
	}
	out := make([]metav1.Object, 0, len(items))
	for _, item := range items {
		m, err := apimeta.Accessor(item)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// diffVersions names the objects added, removed or changed between two listings. StatefulSets
// are written by kube-controller-manager too (status), so only their non-status changes would
// matter; the list reports every change and the reader can tell them apart by the log.
func diffVersions(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		switch old, ok := a[k]; {
		case !ok:
			out = append(out, "added "+k)
		case old != v:
			out = append(out, "changed "+k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, "removed "+k)
		}
	}
	sort.Strings(out)
	return out
}

func countReady(ctx context.Context, k8s client.Client, servers []types.NamespacedName) int {
	n := 0
	for _, k := range servers {
		ds := &v1alpha1.DittoServer{}
		if err := k8s.Get(ctx, k, ds); err != nil {
			continue
		}
		for _, c := range ds.Status.Conditions {
			if c.Type == "Ready" && c.Status == metav1.ConditionTrue && c.ObservedGeneration == ds.Generation {
				n++
			}
		}
	}
	return n
}
