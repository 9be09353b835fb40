package main

import (
	"context"
	"fmt"
	"time"
)

// restart stops the operator (SIGTERM) and starts it again: requests until quiet, writes, and
// which objects changed resourceVersion.
func (br *benchRun) restart(ctx context.Context) error {
	res, k8s, tr := br.res, br.k8s, br.tr
	before, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return fmt.Errorf("restart: listing objects: %w", err)
	}
	br.mark("restart")
	trBefore := tr.snapshot()
	br.op.stop()
	br.sampler.close()
	br.op, br.sampler = nil, nil
	if err := br.launch(ctx, "-restart"); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	op := br.op
	maxWait := 2*time.Minute + time.Duration(res.N)*time.Second
	mR, last, quiet, err := waitQuiet(ctx, op, br.cfg.Quiet, maxWait, op.started)
	if err != nil {
		res.Restart.Error = err.Error()
	}
	res.Restart.Quiet = quiet
	res.Restart.QuietAfterSeconds = round3(last.Sub(op.started).Seconds())
	res.Restart.Metrics = opMetrics{}.delta(mR)
	trAfter := tr.snapshot()
	res.Restart.Trace = trBefore.delta(trAfter)
	if !trAfter.last.IsZero() && trAfter.last.After(op.started) {
		// the tracer saw the last request itself (the metrics poll has a 200 ms grain)
		res.Restart.QuietAfterSeconds = round3(trAfter.last.Sub(op.started).Seconds())
	}
	if p, err := readProc(op.pid); err == nil {
		res.Restart.CPUSeconds, res.Restart.RSSMiB, res.Restart.PeakRSSMiB = round3(p.CPUSeconds), round1(mib(p.RSS)), round1(mib(p.HWM))
	}
	after, err := resourceVersions(ctx, k8s, res.Namespaces, res.N)
	if err != nil {
		return fmt.Errorf("restart: listing objects: %w", err)
	}
	res.Restart.ObjectsChanged = diffVersions(before, after)
	res.Restart.ReadyAfter = countReady(ctx, k8s, br.servers)
	br.mark("end")
	total, writes := apiRequests(res.Restart.Metrics, res.Restart.Trace)
	logf("restart: %d requests (%d writes), quiet after %.2fs (quiet=%v), %d objects changed, %d/%d Ready",
		total, writes, res.Restart.QuietAfterSeconds, quiet,
		len(res.Restart.ObjectsChanged), res.Restart.ReadyAfter, res.N)
	return nil
}
