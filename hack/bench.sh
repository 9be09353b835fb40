#!/usr/bin/env bash
# The operator benchmark on a local kwok control plane (make bench; docs/PERFORMANCE.md).
#
#   hack/bench.sh        build what is missing, then go run ./hack/bench
#   hack/bench.sh down   stop an operator left by an interrupted run (by its PID file) and delete
#                        the benchmark's cluster
#
# Env (all optional):
#   BENCH_N=1,50,200,1000     DittoServers per run; each N gets a fresh cluster and operator
#   BENCH_PER_NS=10           servers per namespace (N=50: 5 namespaces, N=200: 20)
#   BENCH_IDLE=5m             idle period after convergence (reconciles and writes must be 0)
#   BENCH_QUIET=5s            "quiet" = no operator API request for this long
#   BENCH_READY_TIMEOUT=      bound on waiting for Ready (default 2m + 2s per server)
#   BENCH_OPERATOR_ARGS="--manage-control-plane=false"
#                             bin/manager flags (replace the default), e.g. "--kube-api-qps=200";
#                             kwok runs no DittoFS, so the REST API step is off unless set here
#   BENCH_TRACE=1             route the operator through a recording proxy (per-resource breakdown,
#                             request log); 0 connects it straight to the API server (method/code only)
#   BENCH_KCM_ARGS=           extra kube-controller-manager flags of the BENCH_N runs (default none:
#                             stock, as users run it; the targets are measured so)
#   BENCH_RAISED_N=50         N run a second time with BENCH_RAISED_KCM_ARGS, the labelled second
#                             line; BENCH_RAISED_N= skips it
#   BENCH_RAISED_KCM_ARGS="--kube-api-qps=1000 --kube-api-burst=2000"
#   BENCH_OPERATOR_ENV=       KEY=VALUE ... added to the operator's environment (a tuned line, e.g.
#                             GOMEMLIMIT=110MiB)
#   BENCH_PROFILE=0           1: CPU profiles of the operator while servers converge (5 s chunks,
#                             bin/bench/<stamp>-<run>-converge-cpu-*.pprof; go tool pprof merges
#                             them) and a heap profile after idle (<stamp>-<run>-idle-heap.pprof)
#   BENCH_MANAGER=bin/manager the operator binary to measure (make build: static, stripped, as in
#                             the image)
#   KWOK_CLUSTER=dittofs-bench
# Output: a table on stdout, bin/bench/<timestamp>.json, operator logs in bin/bench/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "${root}"
export KWOK_CLUSTER="${KWOK_CLUSTER:-dittofs-bench}"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
benchdir="${root}/bin/bench"
pidfile="${benchdir}/manager.pid"

if [[ "${1:-}" == "down" ]]; then
  if [[ -f "${pidfile}" ]]; then
    pid="$(cat "${pidfile}")"
    if [[ -n "${pid}" ]] && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "^${root}/bin/manager "; then
      kill "${pid}"
      for _ in $(seq 1 100); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "${pid}" 2>/dev/null && kill -9 "${pid}"
      echo "stopped the operator (pid ${pid})"
    fi
    rm -f "${pidfile}"
  fi
  bash hack/kwok-cluster.sh down
  exit 0
fi
[[ -z "${1:-}" ]] || { echo "usage: $0 [down]" >&2; exit 2; }

echo "== build (no-op when up to date)"
K8S_VERSION="${K8S_VERSION}" bash hack/build-k8s.sh >/dev/null
make --no-print-directory build >/dev/null
mkdir -p "${benchdir}"
exec go run ./hack/bench
