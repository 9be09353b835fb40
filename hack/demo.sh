#!/usr/bin/env bash
# The operator on a local cluster with a node that runs DittoFS for real (make demo / make demo-down).
#
#   hack/demo.sh        build what is missing, start the cluster (kwok control plane + hack/dfsnode,
#                       a virtual-kubelet node whose pods are real dfs processes), install the CRD,
#                       run the operator in the background, apply the basic sample, wait until it is
#                       Ready, write a file over NFS and read it back, print how to mount the share
#   hack/demo.sh down   stop the operator and the dfsnode (by their PID files), delete the cluster
#
# Env: KWOK_CLUSTER (default dittofs), READY_TIMEOUT (default 120s).
# It needs root: the dfsnode gives each pod its own network and mount namespace.
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
nodepidfile="${demodir}/dfsnode.pid"
nodelog="${demodir}/dfsnode.log"
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

# stop_dfsnode stops the dfsnode recorded in its PID file (SIGTERM: it stops its pods first).
stop_dfsnode() {
  [[ -f "${nodepidfile}" ]] || return 0
  local pid
  pid="$(cat "${nodepidfile}")"
  if [[ -n "${pid}" ]] && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "${root}/bin/dfsnode "; then
    kill "${pid}"
    for _ in $(seq 1 300); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "${pid}" 2>/dev/null && kill -9 "${pid}"
    echo "stopped the dfsnode (pid ${pid}) and its pods"
  fi
  rm -f "${nodepidfile}"
}

if [[ "${1:-up}" == "down" ]]; then
  stop_manager
  stop_dfsnode
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

if [[ "$(id -u)" != 0 ]]; then
  echo "make demo needs root: its dfsnode runs each DittoFS pod in its own network and mount namespace (sudo make demo)" >&2
  exit 1
fi
t_start="$(now)"

# build runs one build step, saying what it builds (a cold machine compiles from the Go module
# proxy: minutes, not seconds) and how long it took.
build() {
  local what="$1" cold="$2" t
  shift 2
  t="$(now)"
  printf '  %-44s' "${what}"
  local out
  if ! out="$("$@" 2>&1)"; then
    echo "failed:"
    echo "${out}" | tail -n 30
    exit 1
  fi
  echo "$(since "${t}")  (first run, empty Go cache, 2 cores: ${cold})"
}

step "build (no-op when up to date)"
t="$(now)"
build "Kubernetes binaries (bin/k8s)" "~18 min" bash hack/build-k8s.sh
build "DittoFS ${DITTOFS_VERSION:-v0.29.0} (bin/dittofs)" "~3 min" bash hack/build-dittofs.sh
build "operator (bin/manager)" "~4 min" make --no-print-directory build
build "dfsnode (bin/dfsnode)" "~6 min" bash -c "cd hack/dfsnode && go build -o '${root}/bin/dfsnode' ."
build "file client (bin/fileclient)" "~10 s" go build -o "${root}/bin/fileclient" ./hack/fileclient
echo "binaries ready in $(since "${t}")"
dfs="${root}/bin/dittofs/${DITTOFS_VERSION:-v0.29.0}/dfs"
kubectl="${root}/bin/k8s/${K8S_VERSION}/kubectl"

step "kwok cluster ${KWOK_CLUSTER}"
t="$(now)"
bash "${cluster}" up
kubeconfig="$(bash "${cluster}" kubeconfig)"
t_cluster="$(since "${t}")"
k() { "${kubectl}" --kubeconfig "${kubeconfig}" "$@"; }

step "dfsnode: the node that runs DittoFS pods as real processes"
stop_dfsnode
realnode=0
mkdir -p "${demodir}"
(exec setsid "${root}/bin/dfsnode" --kubeconfig "${kubeconfig}" --state-dir "${demodir}/dfsnode" \
  --pod-ip-prefix 127.0.1 --bin "/app/dfs=${dfs}" >"${nodelog}" 2>&1 </dev/null) &
echo -n $! >"${nodepidfile}"
for _ in $(seq 1 150); do
  [[ "$(k get node dfs-node -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == "True" ]] && { realnode=1; break; }
  kill -0 "$(cat "${nodepidfile}")" 2>/dev/null || break
  sleep 0.2
done
if ((!realnode)); then
  echo "the dfsnode did not register a Ready node; log tail:" >&2
  tail -n 30 "${nodelog}" >&2
  exit 1
fi
echo "node dfs-node Ready (pid $(cat "${nodepidfile}"), log: ${nodelog}, pod logs: ${demodir}/dfsnode/pods/)"

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
# no cluster DNS here: the operator reaches each server's API at its pod IP
(exec setsid "${root}/bin/manager" --kubeconfig "${kubeconfig}" --dittofs-api-address=pod-ip \
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
# the sample as published, placed on the dfsnode (its node selector and the toleration of its
# taint), with its share writable by clients without a grant (the default is read) so that the
# demo can write over NFS
k patch --local -f config/samples/dittofs_v1alpha1_dittoserver.yaml --type merge -o yaml -p \
  '{"spec":{"shares":[{"name":"/export","defaultPermission":"read-write"}],"nodeSelector":{"dittofs.dittofs.com/dfs-node":"true"},"tolerations":[{"key":"dittofs.dittofs.com/dfs-node","operator":"Exists","effect":"NoSchedule"}]}}' |
  k apply -n "${NS}" -f -
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

pod_ip="$(k get pod -n "${NS}" "${DS}-0" -o jsonpath='{.status.podIP}')"

step "a file over NFS (userspace NFSv3 client, pod IP ${pod_ip})"
t="$(now)"
"${root}/bin/fileclient" --nfs "${pod_ip}:12049" --export /export
t_file="$(since "${t}")"

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

step "mount it yourself (docs/CLIENTS.md)"
cat <<EOF
The server answers at ${pod_ip} (its pod IP here; in a cluster, the -file Service's ClusterIP or
load-balancer address). NFSv3 over TCP on port 12049 and no portmapper: name both ports.
  Linux:   sudo mkdir -p /mnt/dittofs && sudo mount -t nfs -o vers=3,tcp,port=12049,mountport=12049,nolock ${pod_ip}:/export /mnt/dittofs
  macOS:   sudo mkdir -p /Volumes/dittofs && sudo mount -t nfs -o vers=3,tcp,port=12049,mountport=12049,nolocks,resvport ${pod_ip}:/export /Volumes/dittofs
SMB (with spec.smb.enabled: true; port 1445; the admin user or one made with dfsctl):
  Linux:   sudo mount -t cifs //${pod_ip}/export /mnt/dittofs-smb -o port=1445,username=admin,vers=3.0
  macOS:   mount -t smbfs //admin@${pod_ip}:1445/export /Volumes/dittofs-smb
  Windows: net use Z: \\\\<address>\\export /user:admin /TCPPORT:1445   (Windows 11 24H2 and later)
The admin password (generated by the operator):
  ${kubectl} --kubeconfig ${kubeconfig} -n ${NS} get secret ${DS}-admin-credentials -o jsonpath='{.data.password}' | base64 -d
The REST API (dfsctl) serves HTTPS with a certificate from the server's own CA; trust its ca.crt:
  ${kubectl} --kubeconfig ${kubeconfig} -n ${NS} get secret ${DS}-api-tls -o jsonpath='{.data.ca\.crt}' | base64 -d > ca.crt
  (dfsctl login --server https://localhost:8080 --cacert ca.crt after a port-forward: docs/CLIENTS.md)
EOF

step "summary"
echo "cluster up:            ${t_cluster}"
echo "apply -> Ready:        ${t_ready}"
echo "file written and read: ${t_file}"
echo "whole demo:            $(since "${t_start}")"
echo
echo "kubectl:  ${kubectl} --kubeconfig ${kubeconfig} -n ${NS} get dittoserver"
echo "logs:     operator ${logfile}"
echo "          dfsnode ${nodelog}"
echo "          DittoFS ${demodir}/dfsnode/pods/${NS}_${DS}-0/dittofs.log"
echo "stop:     make demo-down   (hack/demo.sh down: stops the operator and the dfsnode by their PID files, deletes the cluster)"
