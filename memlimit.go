package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitShare is the part of the container's memory limit the Go runtime aims to stay
// under (GOMEMLIMIT): the rest is the binary's mapped pages, stacks and what the runtime does
// not count. The operator's live heap grows with the servers it manages (docs/PERFORMANCE.md),
// and without a soft limit the garbage collector lets the heap grow to twice the live data
// before collecting: near the container's limit that is an OOM kill rather than more GC work.
const memoryLimitShare = 0.75

// cgroupMemoryFiles are where the container's memory limit is read: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// setMemoryLimit sets the Go runtime's soft memory limit to memoryLimitShare of the
// container's memory limit, unless GOMEMLIMIT is set (the runtime has read it) or there is no
// limit. It returns the limit set (0: none).
func setMemoryLimit() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	for _, f := range cgroupMemoryFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if limit := softLimit(string(data)); limit > 0 {
			debug.SetMemoryLimit(limit)
			return limit
		}
		return 0
	}
	return 0
}

// softLimit is memoryLimitShare of a cgroup memory limit file's value; 0 when it sets no limit
// ("max" in v2; v1 reports a huge number).
func softLimit(content string) int64 {
	v := strings.TrimSpace(content)
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 || limit >= 1<<50 { // "max", garbage, or v1's "unlimited"
		return 0
	}
	return int64(float64(limit) * memoryLimitShare)
}
