#!/usr/bin/env bash
# A local Kubernetes control plane with simulated nodes (kwok), no container runtime needed.
#
#   hack/kwok-cluster.sh up           create/start the cluster (idempotent), 1 fake node, default
#                                     StorageClass (kubernetes.io/host-path)
#   hack/kwok-cluster.sh down         delete the cluster (and the host-path PV directories it made)
#   hack/kwok-cluster.sh kubeconfig   print the kubeconfig path
#   hack/kwok-cluster.sh restart-kcm  restart kube-controller-manager (after installing CRDs: its
#                                     garbage collector rediscovers new kinds only every 30 s);
#                                     started again, up to 5 times, if it exits before it is
#                                     healthy (its port taken while it was down)
#   hack/kwok-cluster.sh kubectl ...  kubectl against the cluster
#
# Env: KWOK_CLUSTER (cluster name, default dittofs), K8S_VERSION (default v1.35.4).
# Binaries come from bin/k8s/<version>/ (hack/build-k8s.sh); nothing is downloaded. Every component
# binds to 127.0.0.1. State lives in bin/kwok/ (KWOK_WORKDIR), never in $HOME.
# Pods are only *reported* Running/Ready by kwok: nothing executes.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
CLUSTER="${KWOK_CLUSTER:-dittofs}"

root="$(cd "$(dirname "$0")/.." && pwd)"
bindir="${root}/bin/k8s/${K8S_VERSION}"
export KWOK_WORKDIR="${root}/bin/kwok"
clusterdir="${KWOK_WORKDIR}/clusters/${CLUSTER}"
kubeconfig="${clusterdir}/kubeconfig.yaml"
kwokctl="${bindir}/kwokctl"
kubectl="${bindir}/kubectl"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }
log() { echo ">> [kwok:${CLUSTER}] $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }
# kwokctl logs JSON lines: keep them in a file, show them only when it fails
kwokctl_log="${KWOK_WORKDIR}/${CLUSTER}.kwokctl.log"
kw() {
  mkdir -p "${KWOK_WORKDIR}"
  if ! "${kwokctl}" --name "${CLUSTER}" "$@" >>"${kwokctl_log}" 2>&1; then
    echo "error: kwokctl $* failed:" >&2
    tail -n 30 "${kwokctl_log}" >&2
    return 1
  fi
}

check_bins() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl; do
    [[ -x "${bindir}/${b}" ]] || die "${bindir}/${b} missing: run hack/build-k8s.sh first"
  done
}

k() { "${kubectl}" --kubeconfig "${kubeconfig}" "$@"; }

write_config() {
  mkdir -p "${KWOK_WORKDIR}"
  local cfg="${KWOK_WORKDIR}/${CLUSTER}.kwokctl.yaml"
  cat >"${cfg}" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeVersion: ${K8S_VERSION}
  kubeApiserverBinary: ${bindir}/kube-apiserver
  kubeControllerManagerBinary: ${bindir}/kube-controller-manager
  kubeSchedulerBinary: ${bindir}/kube-scheduler
  kubectlBinary: ${bindir}/kubectl
  etcdBinary: ${bindir}/etcd
  kwokControllerBinary: ${bindir}/kwok
  cacheDir: ${KWOK_WORKDIR}/cache
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  # PVCs bind without a CSI driver; PVs are directories under /tmp/hostpath_pv
  - key: enable-hostpath-provisioner
    value: "true"
  # a restarted controller-manager takes over at once instead of waiting for the lease
  - key: leader-elect
    value: "false"
- name: kwok-controller
  extraArgs:
  # only kwok's own nodes: a node of hack/dfsnode in the same cluster runs its pods for real
  - key: manage-all-nodes
    value: "false"
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
EOF
  echo "${cfg}"
}

storageclass() {
  k apply -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
}

up() {
  check_bins
  local t0 t cfg
  t0="$(now)"
  cfg="$(write_config)"
  t="$(now)"
  # --kubeconfig "": do not add a context to ~/.kube/config; use the cluster's own kubeconfig.yaml
  kw -c "${cfg}" create cluster --kubeconfig "" --wait 60s
  log "control plane up in $(since "${t}")"
  t="$(now)"
  kw scale node --replicas 1
  k wait --for=condition=Ready node --all --timeout=60s >/dev/null
  log "node ready in $(since "${t}")"
  storageclass
  # the default ServiceAccount is needed before Pods can be created in a namespace
  for _ in $(seq 1 100); do
    k get serviceaccount default -n default >/dev/null 2>&1 && break
    sleep 0.2
  done
  log "cluster ready in $(since "${t0}") (kubeconfig: ${kubeconfig})"
}

down() {
  local t0
  t0="$(now)"
  if [[ ! -d "${clusterdir}" ]]; then
    log "no cluster"
    return 0
  fi
  # host-path PVs are plain directories under /tmp/hostpath_pv: remove the ones of this cluster
  local dirs=""
  if [[ -f "${kubeconfig}" ]]; then
    dirs="$(k get pv -o jsonpath='{range .items[*]}{.spec.hostPath.path}{"\n"}{end}' --request-timeout=5s 2>/dev/null || true)"
  fi
  local pids="" f
  for f in "${clusterdir}"/pids/*.pid; do
    [[ -f "${f}" ]] && pids+=" $(cat "${f}")"
  done
  kw delete cluster || true
  # kwokctl only signals the components: wait (bounded) until they are gone
  local p
  for p in ${pids}; do
    for _ in $(seq 1 100); do
      kill -0 "${p}" 2>/dev/null || break
      sleep 0.1
    done
  done
  local d
  for d in ${dirs}; do
    [[ "${d}" == /tmp/hostpath_pv/* ]] && rm -rf -- "${d}"
  done
  rm -f "${KWOK_WORKDIR}/${CLUSTER}.kwokctl.yaml" "${kwokctl_log}"
  log "cluster deleted in $(since "${t0}")"
}

restart_kcm() {
  local pidfile="${clusterdir}/pids/kube-controller-manager.pid"
  local logfile="${clusterdir}/logs/kube-controller-manager.log"
  [[ -f "${pidfile}" ]] || die "no ${pidfile}: is the cluster up?"
  local t0 pid
  t0="$(now)"
  pid="$(cat "${pidfile}")"
  [[ -r "/proc/${pid}/cmdline" ]] || die "kube-controller-manager (pid ${pid}) is not running"
  # the exact command line kwokctl started it with
  local -a args=()
  mapfile -d '' -t args <"/proc/${pid}/cmdline"
  [[ "${args[0]}" == *kube-controller-manager ]] || die "pid ${pid} is not kube-controller-manager"
  local has_le=0 a port=""
  for a in "${args[@]}"; do
    [[ "${a}" == --leader-elect=* ]] && has_le=1
    [[ "${a}" == --secure-port=* ]] && port="${a#--secure-port=}"
  done
  ((has_le)) || args+=(--leader-elect=false)
  kill "${pid}"
  for _ in $(seq 1 100); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "${pid}" 2>/dev/null; then
    kill -9 "${pid}"
    for _ in $(seq 1 50); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # While it is down its port is free, and another process may take it meanwhile (kwokctl gives
  # a cluster being created the first free ports below 32768): the new one then exits with
  # "address already in use". Start it again, up to 5 times, a second apart.
  local starts ok=0
  for starts in 1 2 3 4 5; do
    # same as kwokctl: detached (own session), in the cluster dir, log appended, pid file
    # rewritten (the subshell execs setsid, which execs the binary without forking: $! is its pid)
    (cd "${clusterdir}" && exec setsid "${args[@]}" >>"${logfile}" 2>&1 </dev/null) &
    pid=$!
    echo -n "${pid}" >"${pidfile}"
    [[ -n "${port}" ]] || { ok=1; break; }
    for _ in $(seq 1 150); do
      if curl -ksf --max-time 1 "https://127.0.0.1:${port}/healthz" >/dev/null 2>&1; then ok=1; break; fi
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.2
    done
    ((ok)) && break
    if kill -0 "${pid}" 2>/dev/null; then
      die "kube-controller-manager not healthy after 30 s, see ${logfile}"
    fi
    log "kube-controller-manager exited before it was healthy (start ${starts} of 5); the end of its log:"
    tail -n 5 "${logfile}" >&2
    sleep 1
  done
  ((ok)) || die "kube-controller-manager exited 5 times after the restart, see ${logfile}"
  log "kube-controller-manager restarted (pid ${pid}) in $(since "${t0}")"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  kubeconfig) echo "${kubeconfig}" ;;
  restart-kcm) restart_kcm ;;
  kubectl) shift; k "$@" ;;
  *) echo "usage: $0 up|down|kubeconfig|restart-kcm|kubectl ARGS..." >&2; exit 2 ;;
esac
