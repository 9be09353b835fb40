#!/usr/bin/env bash
# Dry run of a release (CI): in a throwaway clone of HEAD, write a CHANGELOG section for the next
# patch version as a maintainer would, run make release, and check that everything carrying the
# version moved together (VERSION, the binary, the image tag, the operator chart and its golden
# files, the bundle's CSV with its upgrade edges, the catalog channel) and that make verify then
# passes. Nothing in this checkout changes. The clone shares this checkout's bin/ (tools).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
current="$(cat "${root}/VERSION")"
IFS=. read -r major minor patch <<<"${current}"
next="${1:-${major}.${minor}.$((patch + 1))}"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
fail() { echo "release dry run: $*" >&2; exit 1; }

git clone -q "${root}" "${tmp}/repo"
ln -s "${root}/bin" "${tmp}/repo/bin"
cd "${tmp}/repo"
sed -i "0,/^## \[Unreleased\]/s//## [Unreleased]\n\n## [${next}]\n\n- Release dry run./" CHANGELOG.md
make release VERSION="${next}" >"${tmp}/release.log" 2>&1 || { tail -40 "${tmp}/release.log" >&2; fail "make release VERSION=${next} failed"; }

check() { # check <file> <fixed string>
  grep -qF -- "$2" "$1" || fail "$1 does not contain '$2'"
}
[[ "$(cat VERSION)" == "${next}" ]] || fail "VERSION is $(cat VERSION)"
[[ "$(go run . --version 2>&1)" == *"${next}"* ]] || fail "the binary does not report ${next}: $(go run . --version 2>&1)"
check config/manager/kustomization.yaml "newTag: v${next}"
check helm-charts/dittofs-operator/Chart.yaml "version: ${next}"
check helm-charts/dittofs-operator/Chart.yaml "appVersion: \"v${next}\""
check test/packaging/testdata/default.golden.yaml "helm.sh/chart: dittofs-operator-${next}"
check test/packaging/testdata/default.golden.yaml "image: \"ghcr.io/dittofs/dittofs-operator:v${next}\""
csv=bundle/manifests/dittofs-operator.clusterserviceversion.yaml
check "${csv}" "  version: ${next}"
check "${csv}" "  replaces: dittofs-operator.v${current}"
check "${csv}" "olm.skipRange: \"<${next}\""
check "${csv}" "containerImage: ghcr.io/dittofs/dittofs-operator:v${next}"
check catalog/dittofs-operator/channel-alpha.yaml "  - name: dittofs-operator.v${next}"
check catalog/dittofs-operator/channel-alpha.yaml "    replaces: dittofs-operator.v${current}"
[[ -f "catalog/dittofs-operator/dittofs-operator.v${next}.yaml" ]] || fail "no catalog bundle for ${next}"
[[ ! -e "catalog/dittofs-operator/dittofs-operator.v${current}.yaml" ]] || fail "the catalog still holds ${current}"

git add -A
git -c user.name=dry-run -c user.email=dry-run@localhost commit -qm "release ${next} (dry run)"
make verify >"${tmp}/verify.log" 2>&1 || { tail -40 "${tmp}/verify.log" >&2; fail "make verify fails after the release"; }
echo "release dry run ${current} -> ${next}: VERSION, binary, image tag, chart, golden files, CSV (replaces v${current}, skipRange <${next}), catalog channel, make verify: ok"
