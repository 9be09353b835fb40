package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// startup starts the operator and measures its start: discovery and informer lists, settled
// when no request for 2 s. Teardown stops the operator and its RSS sampler, the ones the restart
// started if it got that far.
func (br *benchRun) startup(ctx context.Context) error {
	br.pidFile = filepath.Join(br.outDir, "manager.pid")
	if err := br.launch(ctx, ""); err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	// op and sampler are replaced at the restart (nil while it has stopped the old ones).
	br.onTeardown(func() {
		if br.op != nil {
			br.op.stop()
		}
	})
	br.onTeardown(func() {
		if br.sampler != nil {
			br.sampler.close()
		}
	})

	res, op := br.res, br.op
	mStart, last, quiet, err := waitQuiet(ctx, op, 2*time.Second, 60*time.Second, op.started)
	if err != nil {
		return fmt.Errorf("startup: %w", err)
	}
	res.Startup.Requests = int(mStart.totalRequests())
	res.Startup.Seconds = round3(last.Sub(op.started).Seconds())
	if p, err := readProc(op.pid); err == nil {
		res.Startup.CPUSeconds, res.Startup.RSSMiB = round3(p.CPUSeconds), round1(mib(p.RSS))
	}
	logf("operator pid %d started: %d requests until quiet (%v) after %.2fs", op.pid, res.Startup.Requests, quiet, res.Startup.Seconds)
	return nil
}

// launch starts bin/manager with its log in bin/bench/<stamp>-n<N>-manager<suffix>.log, and an
// RSS sampler on its PID. On failure br.op and br.sampler are nil.
func (br *benchRun) launch(ctx context.Context, suffix string) error {
	logPath := br.outFile("manager" + suffix + ".log")
	br.res.Logs = append(br.res.Logs, logPath)
	var err error
	if br.op, err = startOperator(ctx, br.manager, br.opKubeconfig, logPath, br.pidFile, br.cfg.OperatorArgs, br.cfg.OperatorEnv, br.cfg.Profile); err != nil {
		br.op, br.sampler = nil, nil
		return err
	}
	br.sampler = startRSSSampler(br.op.pid, 100*time.Millisecond)
	return nil
}
