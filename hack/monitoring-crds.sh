#!/usr/bin/env bash
# Fetches the Prometheus operator's ServiceMonitor and PrometheusRule CRDs -- the real ones, from
# the module the Go proxy serves -- into bin/crds/ for the tests (make monitoring-crds; make test
# runs it).
set -euo pipefail
VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.94.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/crds/prometheus-operator-${VERSION}"
crds=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
missing=0
for crd in "${crds[@]}"; do [[ -f "${out}/${crd}" ]] || missing=1; done
[[ "${missing}" == 0 ]] && exit 0
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
dir="$(cd "${tmp}" && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@${VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
mkdir -p "${out}"
for crd in "${crds[@]}"; do
  [[ -n "${dir}" && -f "${dir}/example/prometheus-operator-crd/${crd}" ]] || {
    echo "prometheus-operator ${VERSION}: no ${crd} in the module" >&2
    exit 1
  }
  cp "${dir}/example/prometheus-operator-crd/${crd}" "${out}/${crd}"
  chmod 644 "${out}/${crd}"
  echo "${out}/${crd}"
done
