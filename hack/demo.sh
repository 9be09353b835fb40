#!/usr/bin/env bash
# The operator on a local kwok cluster (make demo / make demo-down).
#
#   hack/demo.sh        build what is missing, start the cluster, install the CRD, run the operator
#                       in the background, apply the basic sample and wait until it is Ready
#   hack/demo.sh down   stop the operator (by its PID file) and delete the cluster
#
# Env: KWOK_CLUSTER (default dittofs), READY_TIMEOUT (default 120s).
# Pods are only *reported* Running by kwok (nothing executes): this shows the operator's
# reconciliation (objects, status, garbage collection), not a working file server.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "${root}"
K8S_VERSION="${K8S_VERSION:-v1.35.4}"
export KWOK_CLUSTER="${KWOK_CLUSTER:-dittofs}"
READY_TIMEOUT="${READY_TIMEOUT:-120s}"
NS=dittofs
DS=dittoserver-sample
cluster="${root}/hack/kwok-cluster.sh"
demodir="${root}/bin/demo"
pidfile="${demodir}/manager.pid"
logfile="${demodir}/manager.log"
portfile="${demodir}/manager.ports"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }
step() { printf '\n== %s\n' "$*"; }

# stop_manager kills the manager recorded in the PID file, if that PID is still bin/manager.
stop_manager() {
  [[ -f "${pidfile}" ]] || return 0
  local pid
  pid="$(cat "${pidfile}")"
  if [[ -n "${pid}" ]] && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "${root}/bin/manager "; then
    kill "${pid}"
    for _ in $(seq 1 50); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "${pid}" 2>/dev/null && kill -9 "${pid}"
    echo "stopped the operator (pid ${pid})"
  fi
  rm -f "${pidfile}" "${portfile}"
}

if [[ "${1:-up}" == "down" ]]; then
  stop_manager
  bash "${cluster}" down
  exit 0
fi
[[ "${1:-up}" == "up" ]] || { echo "usage: $0 [up|down]" >&2; exit 2; }

# free_port prints a TCP port nobody listens on at the moment.
free_port() {
  local p used
  used="$(ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -u)"
  while :; do
    p=$((20000 + RANDOM % 10000))
    grep -qx "${p}" <<<"${used}" || { echo "${p}"; return; }
  done
}

# requests prints the total of rest_client_requests_total on the operator's metrics endpoint.
requests() {
  curl -sf --max-time 5 "http://127.0.0.1:${metrics_port}/metrics" |
    awk '/^rest_client_requests_total/ {s += $NF} END {printf "%d\n", s}'
}

t_start="$(now)"

step "build (no-op when up to date)"
t="$(now)"
bash hack/build-k8s.sh >/dev/null
make --no-print-directory build >/dev/null
echo "binaries ready in $(since "${t}")"
kubectl="${root}/bin/k8s/${K8S_VERSION}/kubectl"

step "kwok cluster ${KWOK_CLUSTER}"
t="$(now)"
bash "${cluster}" up
kubeconfig="$(bash "${cluster}" kubeconfig)"
t_cluster="$(since "${t}")"
k() { "${kubectl}" --kubeconfig "${kubeconfig}" "$@"; }

step "CRD"
k apply --server-side --force-conflicts -f config/crd/bases/
# Poll: `kubectl wait` fails outright if it reads the CRD before any status condition exists.
for _ in $(seq 1 300); do
  [[ "$(k get crd dittoservers.dittofs.dittofs.com -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" == "True" ]] && break
  sleep 0.1
done
# the garbage collector only learns the new kind on its next 30 s discovery: restart it
bash "${cluster}" restart-kcm
k create namespace "${NS}" --dry-run=client -o yaml | k apply -f -

step "operator"
stop_manager
mkdir -p "${demodir}"
metrics_port="$(free_port)"
probe_port="$(free_port)"
while [[ "${probe_port}" == "${metrics_port}" ]]; do probe_port="$(free_port)"; done
# own session: the operator outlives this script and ignores the terminal's Ctrl-C
(exec setsid "${root}/bin/manager" --kubeconfig "${kubeconfig}" \
  --metrics-bind-address "127.0.0.1:${metrics_port}" --metrics-secure=false \
  --health-probe-bind-address "127.0.0.1:${probe_port}" >"${logfile}" 2>&1 </dev/null) &
echo -n $! >"${pidfile}"
echo "metrics=${metrics_port} probe=${probe_port}" >"${portfile}"
mpid="$(cat "${pidfile}")"
t="$(now)"
ok=0
for _ in $(seq 1 150); do
  if curl -sf --max-time 1 "http://127.0.0.1:${probe_port}/readyz" >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "${mpid}" 2>/dev/null || break
  sleep 0.2
done
if ((!ok)); then
  echo "the operator is not ready (exited or no /readyz after 30 s); log tail:" >&2
  tail -n 40 "${logfile}" >&2
  exit 1
fi
echo "operator pid ${mpid} ready in $(since "${t}") (log: ${logfile}, metrics: http://127.0.0.1:${metrics_port}/metrics)"
req_before="$(requests)"

step "DittoServer ${NS}/${DS}"
t="$(now)"
k apply -n "${NS}" -f config/samples/dittofs_v1alpha1_dittoserver.yaml
if ! k wait -n "${NS}" --for=condition=Ready "dittoserver/${DS}" --timeout="${READY_TIMEOUT}"; then
  echo >&2
  echo "DittoServer ${NS}/${DS} did not become Ready within ${READY_TIMEOUT}." >&2
  k get -n "${NS}" "dittoserver/${DS}" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}' >&2 || true
  echo "operator log tail (${logfile}):" >&2
  tail -n 40 "${logfile}" >&2
  echo "stop with: make demo-down (hack/demo.sh down)" >&2
  exit 1
fi
t_ready="$(since "${t}")"
sleep 2 # let the last status write and events land before counting requests
req_after="$(requests)"

step "objects"
k get dittoserver,statefulset,pod,svc,cm,pvc -n "${NS}"

step "conditions of ${DS}"
{
  printf 'TYPE\tSTATUS\tREASON\tMESSAGE\n'
  k get -n "${NS}" "dittoserver/${DS}" \
    -o jsonpath='{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}'
} | column -t -s $'\t'

step "API requests of the operator (rest_client_requests_total)"
printf '%-44s %6d\n' "operator startup (discovery, informers):" "${req_before}" \
  "one DittoServer, create -> Ready (+2 s):" "$((req_after - req_before))" \
  "total:" "${req_after}"
echo "by method and code (total):"
curl -sf --max-time 5 "http://127.0.0.1:${metrics_port}/metrics" | grep '^rest_client_requests_total' |
  sed -E 's/.*code="([^"]*)".*method="([^"]*)"} (.*)/  \2 \1: \3/' | sort

step "summary"
echo "cluster up:            ${t_cluster}"
echo "apply -> Ready:        ${t_ready}"
echo "whole demo:            $(since "${t_start}")"
echo
echo "kubectl:  ${kubectl} --kubeconfig ${kubeconfig} -n ${NS} get dittoserver"
echo "admin:    ${kubectl} --kubeconfig ${kubeconfig} -n ${NS} get secret ${DS}-admin-credentials -o jsonpath='{.data.password}' | base64 -d"
echo "log:      ${logfile}"
echo "stop:     make demo-down   (hack/demo.sh down: stops the operator by its PID file, deletes the cluster)"
