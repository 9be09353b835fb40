#!/usr/bin/env bash
# Builds the Kubernetes test binaries from the Go module proxy (setup-envtest and release
# downloads cannot be reached here): kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), kwok and kwokctl.
# Output: bin/k8s/<version>/ . Each binary is stamped, so a re-run with the same versions is a no-op.
# The project's own go.mod is never touched: the builds happen in throwaway modules under bin/.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/k8s/${K8S_VERSION}"
work="${root}/bin/k8s/src"
mkdir -p "${out}" "${work}"
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

stamp_ok() { [[ -x "${out}/$1" && "$(cat "${out}/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"${out}/.$1.version"; }

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
need_k8s=()
for b in "${k8s_bins[@]}"; do stamp_ok "$b" "${K8S_VERSION}" || need_k8s+=("$b"); done

if ((${#need_k8s[@]})); then
  mod="${work}/kubernetes-${K8S_VERSION}"
  mkdir -p "${mod}"
  if [[ ! -f "${mod}/go.sum" ]]; then
    echo ">> preparing tools module for k8s.io/kubernetes ${K8S_VERSION}"
    gomod="$(cd "${mod}" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    minor="${K8S_VERSION#v1.}"
    staging="v0.${minor}"
    {
      echo "module dittofs.local/k8s-tools"
      echo
      grep -E '^go [0-9]' "${gomod}"
      grep -E '^godebug ' "${gomod}" || true
      echo
      echo "require k8s.io/kubernetes ${K8S_VERSION}"
      echo
      echo "replace ("
      grep -E '=> \./staging/src/' "${gomod}" | awk -v v="${staging}" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >"${mod}/go.mod"
    cat >"${mod}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    (cd "${mod}" && go mod tidy)
  fi
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
  done
  for b in "${need_k8s[@]}"; do
    echo ">> building ${b} ${K8S_VERSION}"
    (cd "${mod}" && go build -trimpath -ldflags "${ldflags}" -o "${out}/${b}" "k8s.io/kubernetes/cmd/${b}")
    stamp "$b" "${K8S_VERSION}"
  done
fi

if ! stamp_ok etcd "${ETCD_VERSION}"; then
  mod="${work}/etcd-${ETCD_VERSION}"
  mkdir -p "${mod}"
  echo ">> building etcd ${ETCD_VERSION}"
  cat >"${mod}/go.mod" <<GO
module dittofs.local/etcd-tools

go 1.25.0

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
GO
  cat >"${mod}/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "${mod}" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "${out}/etcd" .)
  stamp etcd "${ETCD_VERSION}"
fi

for b in kwok kwokctl; do
  if ! stamp_ok "$b" "${KWOK_VERSION}"; then
    echo ">> building ${b} ${KWOK_VERSION}"
    GOBIN="${out}" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/${b}@${KWOK_VERSION}"
    stamp "$b" "${KWOK_VERSION}"
  fi
done

echo "${out}"
