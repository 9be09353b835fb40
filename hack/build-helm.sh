#!/usr/bin/env bash
# Builds the pinned Helm CLI from the Go module proxy into bin/tools/helm-<version>, for the
# operator chart's tests (lint, template, install/upgrade/uninstall). The version is the Helm
# library helm-operator-plugins runs the operand chart with (go.mod). `go install pkg@version`
# fails here (the proxy refuses version lists), so a throwaway module requiring the version is
# used. Re-runs are no-ops.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.21.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/tools/helm-${HELM_VERSION}"
[[ -x "${out}" ]] && { echo "${out}"; exit 0; }
mod="$(mktemp -d)"
trap 'rm -rf "${mod}"' EXIT
export GOWORK=off GOFLAGS=-mod=mod
cat >"${mod}/go.mod" <<GO
module dittofs.local/helm

go 1.26.0

require helm.sh/helm/v3 ${HELM_VERSION}
GO
cat >"${mod}/tools.go" <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
GO
echo ">> building helm ${HELM_VERSION} (helm.sh/helm/v3)" >&2
mkdir -p "${root}/bin/tools"
(cd "${mod}" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" -o "${out}.tmp" helm.sh/helm/v3/cmd/helm >&2)
mv "${out}.tmp" "${out}"
echo "${out}"
