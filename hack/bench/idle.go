package main

import (
	"context"
	"time"
)

// idle leaves the converged servers alone for BENCH_IDLE: reconciles, writes and requests the
// operator makes anyway, its CPU and settled memory, and which objects changed resourceVersion.
func (br *benchRun) idle(ctx context.Context) error {
	res, k8s, tr, op, sampler, servers := br.res, br.k8s, br.tr, br.op, br.sampler, br.servers
	br.mark("idle")
	before, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return err
	}
	s0, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	sampler.reset()
	logf("idle: %s", br.cfg.Idle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(br.cfg.Idle):
	}
	s1, err := take(op, tr, 0, 0)
	if err != nil {
		return err
	}
	res.Idle.Seconds = round3(s1.time.Sub(s0.time).Seconds())
	res.Idle.Metrics = s0.m.delta(s1.m)
	res.Idle.Trace = s0.tr.delta(s1.tr)
	res.Idle.CPUSeconds = round3(s1.p.CPUSeconds - s0.p.CPUSeconds)
	res.Idle.RSSSettledMiB = round1(mib(s1.p.RSS))
	res.Idle.AnonSettledMiB = round1(mib(s1.p.Anon))
	res.Idle.FileSettledMiB = round1(mib(s1.p.File))
	res.Idle.PeakRSSMiB = round1(mib(sampler.max()))
	res.Idle.HeapInuseMiB = round1(s1.m.HeapInuse / (1 << 20))
	after, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return err
	}
	res.Idle.ResourceChange = diffVersions(before, after)
	res.Idle.ReadyAtEnd = countReady(ctx, k8s, servers)
	res.Idle.HeapProfile = br.heapProfile("idle")
	logf("idle: %d reconciles, %d writes, %d requests, %.2f CPU s, RSS %.1f MiB, %d objects changed",
		res.Idle.Metrics.ReconcilesTotal, res.Idle.Metrics.Writes, res.Idle.Metrics.RequestsTotal,
		res.Idle.CPUSeconds, res.Idle.RSSSettledMiB, len(res.Idle.ResourceChange))
	return nil
}
