#!/usr/bin/env bash
# Builds a Go command from the module proxy into bin/tools/<name>-<version>:
#   hack/build-go-tool.sh <name> <module> <version> <package> [extra -ldflags]
# `go install pkg@version` fails here (the proxy refuses version lists), so a throwaway module
# requiring the exact version is used. Prints the binary's path; a re-run is a no-op.
set -euo pipefail
name="$1" module="$2" version="$3" pkg="$4" ldflags="${5:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/tools/${name}-${version}"
[[ -x "${out}" ]] && { echo "${out}"; exit 0; }
mod="$(mktemp -d)"
trap 'rm -rf "${mod}"' EXIT
export GOWORK=off GOFLAGS=-mod=mod
cat >"${mod}/go.mod" <<GO
module dittofs.local/${name}

go 1.26.0

require ${module} ${version}
GO
cat >"${mod}/tools.go" <<GO
//go:build tools

package tools

import _ "${pkg}"
GO
echo ">> building ${name} (${module} ${version})" >&2
mkdir -p "${root}/bin/tools"
(cd "${mod}" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w ${ldflags}" -o "${out}.tmp" "${pkg}" >&2)
mv "${out}.tmp" "${out}"
echo "${out}"
