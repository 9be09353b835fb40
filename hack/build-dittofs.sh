#!/usr/bin/env bash
# Builds the real DittoFS server (dfs) and CLI (dfsctl) from the Go module proxy into
# bin/dittofs/<version>/. `go install pkg@version` fails here (the proxy refuses version lists),
# so a throwaway module requiring github.com/marmos91/dittofs is used. Stamped: re-runs are no-ops.
set -euo pipefail
DITTOFS_VERSION="${DITTOFS_VERSION:-v0.29.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/dittofs/${DITTOFS_VERSION}"
mod="${root}/bin/dittofs/src-${DITTOFS_VERSION}"
if [[ -x "${out}/dfs" && -x "${out}/dfsctl" && "$(cat "${out}/.version" 2>/dev/null)" == "${DITTOFS_VERSION}" ]]; then
  echo "${out}"; exit 0
fi
mkdir -p "${out}" "${mod}"
export GOWORK=off GOFLAGS=-mod=mod
cat >"${mod}/go.mod" <<GO
module dittofs.local/dittofs-tools

go 1.26.0

require github.com/marmos91/dittofs ${DITTOFS_VERSION}
GO
cat >"${mod}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "github.com/marmos91/dittofs/cmd/dfs"
	_ "github.com/marmos91/dittofs/cmd/dfsctl"
)
GO
echo ">> building dfs and dfsctl ${DITTOFS_VERSION}" >&2
(cd "${mod}" && go mod tidy >&2 && GOBIN="${out}" go install -trimpath -ldflags "-s -w" github.com/marmos91/dittofs/cmd/dfs github.com/marmos91/dittofs/cmd/dfsctl >&2)
echo "${DITTOFS_VERSION}" >"${out}/.version"
echo "${out}"
