package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// profileChunk is the length of one CPU profile of the operator; a phase is covered by
// consecutive chunks, which `go tool pprof` merges when given them all.
const profileChunk = 5 * time.Second

// cpuProfiler takes consecutive CPU profiles of the operator (BENCH_PROFILE=1) through its
// --pprof-bind-address, into bin/bench/<stamp>-<run>-<phase>-cpu-<i>.pprof.
type cpuProfiler struct {
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	files    []string
}

// startProfiling profiles the operator until the returned profiler is stopped; nil when the
// benchmark does not profile.
func (br *benchRun) startProfiling(phase string) *cpuProfiler {
	if !br.cfg.Profile || br.op == nil || br.op.pprofPort == 0 {
		return nil
	}
	p := &cpuProfiler{stop: make(chan struct{}), done: make(chan struct{})}
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", br.op.pprofPort, int(profileChunk.Seconds()))
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			path := br.outFile(fmt.Sprintf("%s-cpu-%02d.pprof", phase, i))
			if err := fetchProfile(url, path); err != nil {
				logf("profile: %v", err)
				return
			}
			p.files = append(p.files, path)
		}
	}()
	return p
}

// heapProfile saves the operator's heap profile (BENCH_PROFILE=1; "" otherwise or on failure).
func (br *benchRun) heapProfile(phase string) string {
	if !br.cfg.Profile || br.op == nil || br.op.pprofPort == 0 {
		return ""
	}
	path := br.outFile(phase + "-heap.pprof")
	if err := fetchProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", br.op.pprofPort), path); err != nil {
		logf("heap profile: %v", err)
		return ""
	}
	return path
}

// finish waits for the chunk in progress and returns the profiles taken.
func (p *cpuProfiler) finish() []string {
	if p == nil {
		return nil
	}
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.done
	return p.files
}

func fetchProfile(url, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), profileChunk+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
