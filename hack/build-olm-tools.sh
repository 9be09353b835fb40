#!/usr/bin/env bash
# Builds the OLM tools from the Go module proxy (release downloads cannot be reached here):
#   operator-sdk (github.com/operator-framework/operator-sdk/cmd/operator-sdk)
#   opm          (github.com/operator-framework/operator-registry/cmd/opm)
# Output: bin/tools/operator-sdk-<version>, bin/tools/opm-<version>. Each binary is stamped, so a
# re-run with the same versions is a no-op. `go install X@v` is not used: the proxy refuses the
# version list for some of their dependencies, so each tool is built from a throwaway tools module
# under bin/tools/src (`go get -tool X@v`, then `go build`). The project's go.mod is never touched.
# Neither module has replace directives at these versions (checked: operator-sdk v1.42.2,
# operator-registry v1.63.0); if a future version has some, copy them into the tools module the
# way hack/build-k8s.sh does for k8s.io/kubernetes.
set -euo pipefail

OPERATOR_SDK_VERSION="${OPERATOR_SDK_VERSION:-v1.42.2}"
OPM_VERSION="${OPM_VERSION:-v1.63.0}"

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${root}/bin/tools"
work="${out}/src"
mkdir -p "${out}" "${work}"
export GOWORK=off GOFLAGS=-mod=mod

stamp_ok() { [[ -x "${out}/$1" && "$(cat "${out}/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" >"${out}/.$1.version"; }

# tools_module DIR MODULE VERSION PACKAGE: a module whose only job is to pin PACKAGE (in MODULE at
# VERSION) as a tool. The go line follows the tool's own go.mod. Re-used while it pins VERSION.
tools_module() {
  local dir="$1" module="$2" version="$3" pkg="$4"
  mkdir -p "${dir}"
  if [[ -f "${dir}/go.sum" ]] && grep -qE "^[[:space:]]*(require )?${module} ${version}\b" "${dir}/go.mod"; then
    return
  fi
  local gomod
  gomod="$(cd "${dir}" && go mod download -json "${module}@${version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  if grep -qE '=>' "${gomod}"; then
    echo "!! ${module}@${version} has replace directives: copy them into ${dir}/go.mod (see hack/build-k8s.sh)" >&2
    grep -E '=>' "${gomod}" >&2
    exit 1
  fi
  {
    echo "module dittofs.local/$(basename "${dir}")"
    echo
    grep -E '^go [0-9]' "${gomod}"
  } >"${dir}/go.mod"
  rm -f "${dir}/go.sum"
  (cd "${dir}" && go get -tool "${pkg}@${version}")
}

# operator-sdk: pure Go; containers_image_openpgp avoids the gpgme cgo dependency.
name="operator-sdk-${OPERATOR_SDK_VERSION}"
if ! stamp_ok "${name}" "${OPERATOR_SDK_VERSION}"; then
  mod="${work}/${name}"
  pkg=github.com/operator-framework/operator-sdk
  echo ">> preparing tools module for operator-sdk ${OPERATOR_SDK_VERSION}"
  tools_module "${mod}" "${pkg}" "${OPERATOR_SDK_VERSION}" "${pkg}/cmd/operator-sdk"
  # Same -X flags as operator-sdk's own Makefile: Version ends up in the bundle's
  # operators.operatorframework.io/builder annotation, ImageVersion in the scorecard image tag.
  ldflags="-s -w"
  ldflags+=" -X ${pkg}/internal/version.Version=${OPERATOR_SDK_VERSION}"
  ldflags+=" -X ${pkg}/internal/version.GitVersion=${OPERATOR_SDK_VERSION}"
  ldflags+=" -X ${pkg}/internal/version.ImageVersion=${OPERATOR_SDK_VERSION}"
  ldflags+=" -X ${pkg}/internal/version.KubernetesVersion=v1.33.1"
  echo ">> building operator-sdk ${OPERATOR_SDK_VERSION}"
  start=${SECONDS}
  (cd "${mod}" && CGO_ENABLED=0 go build -trimpath -tags containers_image_openpgp \
    -ldflags "${ldflags}" -o "${out}/${name}" "${pkg}/cmd/operator-sdk")
  stamp "${name}" "${OPERATOR_SDK_VERSION}"
  echo ">> operator-sdk built in $((SECONDS - start))s"
fi

# opm: needs cgo (sqlite, tag json1) like upstream's Makefile.
name="opm-${OPM_VERSION}"
if ! stamp_ok "${name}" "${OPM_VERSION}"; then
  mod="${work}/${name}"
  pkg=github.com/operator-framework/operator-registry
  echo ">> preparing tools module for opm ${OPM_VERSION}"
  tools_module "${mod}" "${pkg}" "${OPM_VERSION}" "${pkg}/cmd/opm"
  ldflags="-s -w"
  ldflags+=" -X ${pkg}/cmd/opm/version.opmVersion=${OPM_VERSION}"
  ldflags+=" -X ${pkg}/cmd/opm/version.buildDate=1970-01-01T00:00:00Z"
  echo ">> building opm ${OPM_VERSION}"
  start=${SECONDS}
  (cd "${mod}" && CGO_ENABLED=1 go build -trimpath -tags "json1 containers_image_openpgp" \
    -ldflags "${ldflags}" -o "${out}/${name}" "${pkg}/cmd/opm")
  stamp "${name}" "${OPM_VERSION}"
  echo ">> opm built in $((SECONDS - start))s"
fi

echo "${out}/operator-sdk-${OPERATOR_SDK_VERSION}"
echo "${out}/opm-${OPM_VERSION}"
