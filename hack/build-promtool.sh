#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker and rule unit-test runner) from the Go module proxy
# into bin/tools/promtool-<version>, for test/prometheus. `go install pkg@version` fails here (the
# proxy refuses version lists), so a throwaway module requiring the version is used. Re-runs
# are no-ops.
set -euo pipefail
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/tools/promtool-${PROMETHEUS_MODULE_VERSION}"
[[ -x "${out}" ]] && { echo "${out}"; exit 0; }
mod="$(mktemp -d)"
trap 'rm -rf "${mod}"' EXIT
export GOWORK=off GOFLAGS=-mod=mod
cat >"${mod}/go.mod" <<GO
module dittofs.local/promtool

go 1.26.0

require github.com/prometheus/prometheus ${PROMETHEUS_MODULE_VERSION}
GO
cat >"${mod}/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
GO
echo ">> building promtool (github.com/prometheus/prometheus ${PROMETHEUS_MODULE_VERSION})" >&2
mkdir -p "${root}/bin/tools"
(cd "${mod}" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w" -o "${out}.tmp" github.com/prometheus/prometheus/cmd/promtool >&2)
mv "${out}.tmp" "${out}"
echo "${out}"
