package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result types (the JSON file).

type report struct {
	Started  time.Time    `json:"started"`
	Finished time.Time    `json:"finished"`
	Machine  machine      `json:"machine"`
	Config   benchConfig  `json:"config"`
	Commit   string       `json:"commit"`
	Runs     []*runResult `json:"runs"`
}

type machine struct {
	Nproc    int    `json:"nproc"`
	MemTotal string `json:"memTotal"`
	FreeG    string `json:"freeG"`
	CPUModel string `json:"cpuModel"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

type latencies struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func latencyOf(xs []float64) latencies {
	if len(xs) == 0 {
		return latencies{}
	}
	return latencies{P50: round3(percentile(xs, 50)), P99: round3(percentile(xs, 99)), Max: round3(percentile(xs, 100))}
}

type runResult struct {
	N int `json:"n"`
	// KCM is kcmStock or kcmRaised: the kube-controller-manager the run had, with KCMArgs.
	KCM        string   `json:"kubeControllerManager"`
	KCMArgs    []string `json:"kubeControllerManagerArgs,omitempty"`
	Namespaces int      `json:"namespaces"`
	Nodes      int      `json:"kwokNodes"`
	Error      string   `json:"error,omitempty"`
	LoadAvg    string   `json:"loadAvgAtStart"`

	Startup struct {
		Requests   int     `json:"requests"`
		Seconds    float64 `json:"secondsToQuiet"`
		CPUSeconds float64 `json:"cpuSeconds"`
		RSSMiB     float64 `json:"rssMiB"`
	} `json:"startup"`

	Converge struct {
		AllReadySeconds float64 `json:"allReadySeconds"`
		ApplySeconds    float64 `json:"applySeconds"`
		Ready           int     `json:"ready"`
		// per CR, seconds from its create request
		ReadyLatency      latencies `json:"readyLatency"`
		StatefulSetLat    latencies `json:"statefulSetCreatedLatency"`
		DeployedLatency   latencies `json:"helmDeployedLatency"`
		PodReadyLatency   latencies `json:"statefulSetReadyLatency"`
		ReadyAfterPodsLat latencies `json:"readyAfterStatefulSetReady"`
		QuietSeconds      float64   `json:"quietAfterSeconds"`

		Metrics metricsDelta `json:"metrics"`
		// RequestsPerCR and WritesPerCR reached the API server (apiRequests);
		// ClientRequestsPerCR is client-go's count, reads answered from the cache included.
		RequestsPerCR       float64            `json:"requestsPerCR"`
		WritesPerCR         float64            `json:"writesPerCR"`
		ClientRequestsPerCR float64            `json:"clientRequestsPerCR"`
		ReconcilesCR        map[string]float64 `json:"reconcilesPerCRByController"`
		Trace               *traceDelta        `json:"trace,omitempty"`
		TracePerCR          map[string]float64 `json:"tracePerCR,omitempty"`

		CPUSeconds   float64            `json:"cpuSeconds"`
		PeakRSSMiB   float64            `json:"peakRSSMiB"` // VmHWM
		RSSAfterMiB  float64            `json:"rssAfterMiB"`
		AnonAfterMiB float64            `json:"rssAnonAfterMiB"`
		FileAfterMiB float64            `json:"rssFileAfterMiB"`
		HeapInuseMiB float64            `json:"heapInuseMiB"`
		ClusterCPU   map[string]float64 `json:"clusterCPUSeconds,omitempty"`
		BenchCPU     float64            `json:"benchCPUSeconds"`
		KCMRequests  map[string]float64 `json:"kubeControllerManagerRequests,omitempty"`
		// Profiles are the operator's CPU profiles of the phase (BENCH_PROFILE=1).
		Profiles      []string           `json:"cpuProfiles,omitempty"`
		SchedRequests map[string]float64 `json:"kubeSchedulerRequests,omitempty"`
	} `json:"converge"`

	Idle struct {
		Seconds        float64      `json:"seconds"`
		Metrics        metricsDelta `json:"metrics"`
		Trace          *traceDelta  `json:"trace,omitempty"`
		CPUSeconds     float64      `json:"cpuSeconds"`
		RSSSettledMiB  float64      `json:"rssSettledMiB"`
		AnonSettledMiB float64      `json:"rssAnonSettledMiB"`
		FileSettledMiB float64      `json:"rssFileSettledMiB"`
		PeakRSSMiB     float64      `json:"peakRSSMiB"`
		HeapInuseMiB   float64      `json:"heapInuseMiB"`
		ReadyAtEnd     int          `json:"readyAtEnd"`
		ResourceChange []string     `json:"objectsChanged"`
		// HeapProfile is the operator's heap profile at the end (BENCH_PROFILE=1).
		HeapProfile string `json:"heapProfile,omitempty"`
	} `json:"idle"`

	SpecChange struct {
		Server           string       `json:"server"`
		ConfigMapSeconds float64      `json:"configMapUpdatedSeconds"`
		HashSeconds      float64      `json:"newHashSeconds"`
		RolledSeconds    float64      `json:"statefulSetRolledSeconds"`
		ReadySeconds     float64      `json:"readySeconds"`
		QuietSeconds     float64      `json:"quietAfterSeconds"`
		Metrics          metricsDelta `json:"metrics"`
		Trace            *traceDelta  `json:"trace,omitempty"`
		CPUSeconds       float64      `json:"cpuSeconds"`
		Error            string       `json:"error,omitempty"`
	} `json:"specChange"`

	Restart struct {
		QuietAfterSeconds float64      `json:"quietAfterSeconds"`
		Quiet             bool         `json:"quiet"`
		Metrics           metricsDelta `json:"metrics"`
		Trace             *traceDelta  `json:"trace,omitempty"`
		ObjectsChanged    []string     `json:"objectsChanged"`
		ReadyAfter        int          `json:"readyAfter"`
		CPUSeconds        float64      `json:"cpuSeconds"`
		RSSMiB            float64      `json:"rssMiB"`
		PeakRSSMiB        float64      `json:"peakRSSMiB"`
		Error             string       `json:"error,omitempty"`
	} `json:"restart"`

	Logs []string `json:"logs"`
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Output.

func printRun(r *runResult) {
	if r.Converge.Trace == nil {
		return
	}
	fmt.Printf("\n%s: operator requests per converged DittoServer, by verb, resource and code (tracer):\n", r.label())
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, k := range sortedKeys(r.Converge.Trace.Requests) {
		_, _ = fmt.Fprintf(w, "%.2f\t%d\t  %s\n", r.Converge.TracePerCR[k], r.Converge.Trace.Requests[k], k)
	}
	_ = w.Flush()
	for _, ph := range []struct {
		name string
		t    *traceDelta
	}{{"idle", r.Idle.Trace}, {"spec change", r.SpecChange.Trace}, {"restart", r.Restart.Trace}} {
		if ph.t == nil || len(ph.t.Requests) == 0 {
			continue
		}
		fmt.Printf("%s %s (%d requests without watches):\n", r.label(), ph.name, ph.t.Total)
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, k := range sortedKeys(ph.t.Requests) {
			_, _ = fmt.Fprintf(w, "%d\t  %s\n", ph.t.Requests[k], k)
		}
		_ = w.Flush()
	}
}

// label names a run in the table: "N=50", or "N=50 kcm raised" for the second line.
func (r *runResult) label() string {
	if r.KCM == kcmRaised {
		return fmt.Sprintf("N=%d kcm raised", r.N)
	}
	return fmt.Sprintf("N=%d", r.N)
}

// outFile is bin/bench/<stamp>-<run>-<name>, a file of this run (fileTag).
func (br *benchRun) outFile(name string) string {
	return filepath.Join(br.outDir, br.stamp+"-"+br.res.fileTag()+"-"+name)
}

// fileTag names a run's log files: "n50", or "n50-raised".
func (r *runResult) fileTag() string {
	if r.KCM == kcmRaised {
		return fmt.Sprintf("n%d-raised", r.N)
	}
	return fmt.Sprintf("n%d", r.N)
}

func printTable(rep *report) {
	fmt.Printf("\n==== results (%d CPUs %s, %s; operator args %q, env %q)\n", rep.Machine.Nproc, rep.Machine.CPUModel, rep.Machine.MemTotal,
		rep.Config.OperatorArgs, rep.Config.OperatorEnv)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	header := "metric"
	for _, r := range rep.Runs {
		header += "\t" + r.label()
	}
	_, _ = fmt.Fprintln(w, header+"\t")
	row := func(name string, f func(r *runResult) string) {
		line := name
		for _, r := range rep.Runs {
			line += "\t" + f(r)
		}
		_, _ = fmt.Fprintln(w, line+"\t")
	}
	row("namespaces / kwok nodes", func(r *runResult) string { return fmt.Sprintf("%d / %d", r.Namespaces, r.Nodes) })
	row("error", func(r *runResult) string {
		if r.Error == "" {
			return "-"
		}
		return "yes (see JSON)"
	})
	row("all Ready after first create (s)", func(r *runResult) string { return f2(r.Converge.AllReadySeconds) })
	row("per CR Ready p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.ReadyLatency.P50) + " / " + f2(r.Converge.ReadyLatency.P99)
	})
	row("  StatefulSet created p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.StatefulSetLat.P50) + " / " + f2(r.Converge.StatefulSetLat.P99)
	})
	row("  Helm Deployed p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.DeployedLatency.P50) + " / " + f2(r.Converge.DeployedLatency.P99)
	})
	row("  StatefulSet ready (kcm+kwok) p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.PodReadyLatency.P50) + " / " + f2(r.Converge.PodReadyLatency.P99)
	})
	row("  Ready after StatefulSet ready p50 / p99 (s)", func(r *runResult) string {
		return f2(r.Converge.ReadyAfterPodsLat.P50) + " / " + f2(r.Converge.ReadyAfterPodsLat.P99)
	})
	row("API requests per converged CR", func(r *runResult) string { return f2(r.Converge.RequestsPerCR) })
	row("  of which writes (POST/PUT/PATCH/DELETE)", func(r *runResult) string { return f2(r.Converge.WritesPerCR) })
	row("  client-go's count (reads answered from the cache included)", func(r *runResult) string { return f2(r.Converge.ClientRequestsPerCR) })
	row("  client-go by method and code (total)", func(r *runResult) string { return mapText(r.Converge.Metrics.Requests) })
	row("reconciles per CR (go / helm)", func(r *runResult) string {
		return f2(r.Converge.ReconcilesCR["dittoserver-go"]) + " / " + f2(r.Converge.ReconcilesCR["dittoserver-helm"])
	})
	row("  by controller and result (total)", func(r *runResult) string { return mapText(r.Converge.Metrics.Reconciles) })
	row("peak operator requests in one second", func(r *runResult) string {
		if r.Converge.Trace == nil {
			return "-"
		}
		return strconv.Itoa(r.Converge.Trace.PeakPerSecond)
	})
	row("operator startup requests", func(r *runResult) string { return strconv.Itoa(r.Startup.Requests) })
	row("CPU seconds (converge)", func(r *runResult) string { return f2(r.Converge.CPUSeconds) })
	row("peak RSS (MiB, VmHWM)", func(r *runResult) string { return f1(r.Converge.PeakRSSMiB) })
	row("RSS after converge / settled after idle (MiB)", func(r *runResult) string {
		return f1(r.Converge.RSSAfterMiB) + " / " + f1(r.Idle.RSSSettledMiB)
	})
	row("  settled RssAnon / RssFile (MiB)", func(r *runResult) string {
		return f1(r.Idle.AnonSettledMiB) + " / " + f1(r.Idle.FileSettledMiB)
	})
	row("heap in use after idle (MiB)", func(r *runResult) string { return f1(r.Idle.HeapInuseMiB) })
	row("CPU s of apiserver / etcd / kcm / kwok / bench", func(r *runResult) string {
		c := r.Converge.ClusterCPU
		return fmt.Sprintf("%s / %s / %s / %s / %s", f1(c["kube-apiserver"]), f1(c["etcd"]), f1(c["kube-controller-manager"]),
			f1(c["kwok-controller"]), f1(r.Converge.BenchCPU))
	})
	row("kcm requests during converge", func(r *runResult) string { return mapTextF(r.Converge.KCMRequests) })
	row("idle (s)", func(r *runResult) string { return f1(r.Idle.Seconds) })
	row("  reconciles / writes / requests", func(r *runResult) string {
		return fmt.Sprintf("%d / %d / %d", r.Idle.Metrics.ReconcilesTotal, r.Idle.Metrics.Writes, r.Idle.Metrics.RequestsTotal)
	})
	row("  objects changed / CPU s", func(r *runResult) string {
		return fmt.Sprintf("%d / %s", len(r.Idle.ResourceChange), f2(r.Idle.CPUSeconds))
	})
	row("spec change: ConfigMap / new hash (s)", func(r *runResult) string {
		return f3(r.SpecChange.ConfigMapSeconds) + " / " + f3(r.SpecChange.HashSeconds)
	})
	row("  StatefulSet rolled / Ready (s)", func(r *runResult) string {
		return f3(r.SpecChange.RolledSeconds) + " / " + f3(r.SpecChange.ReadySeconds)
	})
	row("  requests (writes) / reconciles", func(r *runResult) string {
		total, writes := apiRequests(r.SpecChange.Metrics, r.SpecChange.Trace)
		return fmt.Sprintf("%d (%d) / %d", total, writes, r.SpecChange.Metrics.ReconcilesTotal)
	})
	row("restart: requests until quiet", func(r *runResult) string {
		total, _ := apiRequests(r.Restart.Metrics, r.Restart.Trace)
		return strconv.Itoa(total)
	})
	row("  quiet after (s) / writes / objects changed", func(r *runResult) string {
		_, writes := apiRequests(r.Restart.Metrics, r.Restart.Trace)
		return fmt.Sprintf("%s / %d / %d", f2(r.Restart.QuietAfterSeconds), writes, len(r.Restart.ObjectsChanged))
	})
	row("  reconciles / Ready after", func(r *runResult) string {
		return fmt.Sprintf("%d / %d", r.Restart.Metrics.ReconcilesTotal, r.Restart.ReadyAfter)
	})
	_ = w.Flush()
}

func mapText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", strings.ReplaceAll(k, " ", ":"), m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func mapTextF(m map[string]float64) string {
	ints := map[string]int{}
	for k, v := range m {
		ints[k] = int(math.Round(v))
	}
	return mapText(ints)
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round2(v float64) float64 { return math.Round(v*100) / 100 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
func f1(v float64) string      { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string      { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string      { return strconv.FormatFloat(v, 'f', 3, 64) }

// Machine description.

func machineInfo() machine {
	m := machine{Nproc: runtime.NumCPU(), Go: runtime.Version()}
	if out, err := exec.Command("nproc").Output(); err == nil {
		m.Nproc, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("free", "-g").Output(); err == nil {
		m.FreeG = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

// selfCPU is the benchmark's own CPU seconds (its watches and the tracer).
func selfCPU() float64 {
	p, err := readProc(os.Getpid())
	if err != nil {
		return 0
	}
	return p.CPUSeconds
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func gitCommit(root string) string {
	if v := os.Getenv("BENCH_COMMIT"); v != "" { // a build from an export without .git
		return v
	}
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
