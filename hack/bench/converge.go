package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/dittofs/dittofs-operator/api/v1alpha1"
)

// converge creates the N DittoServers at once (16 workers) and measures until every one is
// Ready and the operator is quiet: latencies per CR from the benchmark's watches, the operator's
// requests, reconciles, CPU and memory, and the CPU of the control plane and of the benchmark.
func (br *benchRun) converge(ctx context.Context) error {
	res, k8s, trk, tr, op, sampler, servers := br.res, br.k8s, br.trk, br.tr, br.op, br.sampler, br.servers
	kcmPort, schedPort := br.kcmPort, br.schedPort
	br.mark("converge")
	cpu0, self0 := br.c.componentCPU(), selfCPU()
	sample, err := sampleServer(br.root)
	if err != nil {
		return err
	}
	s0, err := take(op, tr, kcmPort, schedPort)
	if err != nil {
		return err
	}
	sampler.reset()
	prof := br.startProfiling("converge")
	t0 := time.Now()
	work := make(chan types.NamespacedName)
	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				ds := sample.DeepCopy()
				ds.Name, ds.Namespace = key.Name, key.Namespace
				trk.setApplied(key.String(), time.Now())
				if err := k8s.Create(ctx, ds); err != nil {
					errs <- fmt.Errorf("creating %s: %w", key, err)
				}
			}
		}()
	}
	for _, k := range servers {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	res.Converge.ApplySeconds = round3(time.Since(t0).Seconds())
	logf("converge: %d DittoServers created in %.2fs", len(servers), res.Converge.ApplySeconds)

	timeout := br.cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 2*time.Minute + time.Duration(len(servers))*2*time.Second
	}
	ready := waitFor(ctx, trk, servers, timeout, "Ready", func(s *crState) bool { _, ok := s.readyAt[1]; return ok })
	res.Converge.Ready = ready
	if ready < len(servers) {
		return fmt.Errorf("%d/%d Ready after %s (operator log: %s)", ready, len(servers), timeout, op.log)
	}
	var lat, stsLat, depLat, podLat, afterPods []float64
	var lastReady time.Time
	trk.mu.Lock()
	for _, k := range servers {
		s := trk.crs[k.String()]
		r := s.readyAt[1]
		if r.After(lastReady) {
			lastReady = r
		}
		lat = append(lat, r.Sub(s.applied).Seconds())
		if !s.stsSeen.IsZero() {
			stsLat = append(stsLat, s.stsSeen.Sub(s.applied).Seconds())
		}
		if !s.deployedAt.IsZero() {
			depLat = append(depLat, s.deployedAt.Sub(s.applied).Seconds())
		}
		if rolled, ok := s.rolledAt[s.firstHash]; ok {
			podLat = append(podLat, rolled.Sub(s.applied).Seconds())
			afterPods = append(afterPods, r.Sub(rolled).Seconds())
		}
	}
	trk.mu.Unlock()
	res.Converge.AllReadySeconds = round3(lastReady.Sub(t0).Seconds())
	res.Converge.ReadyLatency = latencyOf(lat)
	res.Converge.StatefulSetLat = latencyOf(stsLat)
	res.Converge.DeployedLatency = latencyOf(depLat)
	res.Converge.PodReadyLatency = latencyOf(podLat)
	res.Converge.ReadyAfterPodsLat = latencyOf(afterPods)
	logf("converge: all %d Ready %.2fs after the first create (per CR p50 %.2fs p99 %.2fs)",
		len(servers), res.Converge.AllReadySeconds, res.Converge.ReadyLatency.P50, res.Converge.ReadyLatency.P99)

	_, last, _, err := waitQuiet(ctx, op, br.cfg.Quiet, 2*time.Minute, lastReady)
	if err != nil {
		return err
	}
	res.Converge.QuietSeconds = round3(last.Sub(t0).Seconds())
	res.Converge.Profiles = prof.finish()
	s1, err := take(op, tr, kcmPort, schedPort)
	if err != nil {
		return err
	}
	n := float64(len(servers))
	res.Converge.Metrics = s0.m.delta(s1.m)
	res.Converge.Trace = s0.tr.delta(s1.tr)
	total, writes := apiRequests(res.Converge.Metrics, res.Converge.Trace)
	res.Converge.RequestsPerCR = round2(float64(total) / n)
	res.Converge.WritesPerCR = round2(float64(writes) / n)
	res.Converge.ClientRequestsPerCR = round2(float64(res.Converge.Metrics.RequestsTotal) / n)
	res.Converge.ReconcilesCR = map[string]float64{}
	for k, v := range res.Converge.Metrics.Reconciles {
		res.Converge.ReconcilesCR[strings.Fields(k)[0]] += round2(float64(v) / n)
	}
	if res.Converge.Trace != nil {
		res.Converge.TracePerCR = map[string]float64{}
		for k, v := range res.Converge.Trace.Requests {
			res.Converge.TracePerCR[k] = round2(float64(v) / n)
		}
	}
	res.Converge.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	res.Converge.PeakRSSMiB = round1(mib(s1.p.HWM))
	res.Converge.RSSAfterMiB = round1(mib(s1.p.RSS))
	res.Converge.AnonAfterMiB = round1(mib(s1.p.Anon))
	res.Converge.FileAfterMiB = round1(mib(s1.p.File))
	res.Converge.HeapInuseMiB = round1(s1.m.HeapInuse / (1 << 20))
	res.Converge.KCMRequests = subMaps(s0.kcm, s1.kcm)
	res.Converge.SchedRequests = subMaps(s0.sch, s1.sch)
	logf("converge: %d requests (%.2f per CR, %.2f writes per CR), %d reconciles, %.2f CPU s, peak RSS %.1f MiB",
		total, res.Converge.RequestsPerCR, res.Converge.WritesPerCR,
		res.Converge.Metrics.ReconcilesTotal, res.Converge.CPUSeconds, res.Converge.PeakRSSMiB)
	res.Converge.ClusterCPU = subMaps(cpu0, br.c.componentCPU())
	res.Converge.BenchCPU = round3(selfCPU() - self0)
	return nil
}

// waitFor waits until cond holds for every server (or the timeout) and returns how many it holds for.
func waitFor(ctx context.Context, trk *tracker, servers []types.NamespacedName, timeout time.Duration, what string, cond func(*crState) bool) int {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	for {
		count, sts, deployed := 0, 0, 0
		trk.mu.Lock()
		for _, k := range servers {
			s := trk.get(k.String())
			if cond(s) {
				count++
			}
			if !s.stsSeen.IsZero() {
				sts++
			}
			if !s.deployedAt.IsZero() {
				deployed++
			}
		}
		trk.mu.Unlock()
		if count == len(servers) || time.Now().After(deadline) || ctx.Err() != nil {
			return count
		}
		if time.Since(lastLog) >= 5*time.Second {
			logf("  %s %d/%d (StatefulSets %d, Helm deployed %d)", what, count, len(servers), sts, deployed)
			lastLog = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sampleServer(root string) (*v1alpha1.DittoServer, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "samples", "dittofs_v1alpha1_dittoserver.yaml"))
	if err != nil {
		return nil, err
	}
	ds := &v1alpha1.DittoServer{}
	if err := yaml.Unmarshal(data, ds); err != nil {
		return nil, err
	}
	// The namespace's own Secrets (benchSecrets), as in every earlier run: the generated ones
	// would add two Secret creations per server and change the figures' meaning.
	ds.Spec.Identity = &v1alpha1.IdentitySpec{
		JWT:   &v1alpha1.JWTSpec{SecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: benchJWTSecret}, Key: "secret"}},
		Admin: &v1alpha1.AdminSpec{PasswordSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: benchAdminSecret}, Key: "password"}},
	}
	return ds, nil
}
