#!/usr/bin/env bash
# Renders the file-based catalog (FBC) for the current bundle into catalog/dittofs-operator/ with
# opm, offline, and validates it:
#   package.yaml              opm init (package, default channel, icon, description)
#   channel-alpha.yaml        the olm.channel blob listing the bundle
#   dittofs-operator.v<VERSION>.yaml   opm render ./bundle (the bundle directory, no registry)
# Deterministic, so make verify can diff it. Run hack/bundle.sh first (make bundle).
# The catalog holds the latest bundle only: its channel entry's skipRange ("<VERSION", also the
# bundle's olm.skipRange) lets OLM upgrade any earlier installed version to it in one step, and
# replaces names the previous release (CHANGELOG.md, hack/previous-version.sh).
set -euo pipefail

VERSION="${VERSION:-$(cat "$(dirname "$0")/../VERSION")}"
CHANNEL="${CHANNEL:-alpha}"
BUNDLE_IMG="${BUNDLE_IMG:-ghcr.io/dittofs/dittofs-operator-bundle:v${VERSION}}"
OPM_VERSION="${OPM_VERSION:-v1.63.0}"
package=dittofs-operator

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "${root}"
PREVIOUS_VERSION="${PREVIOUS_VERSION-$(bash hack/previous-version.sh "${VERSION}")}"
opm="bin/tools/opm-${OPM_VERSION}"
[[ -x "${opm}" ]] || bash hack/build-olm-tools.sh >/dev/null
[[ -f bundle/manifests/${package}.clusterserviceversion.yaml ]] || { echo "no bundle: run make bundle" >&2; exit 1; }

out="catalog/${package}"
rm -rf "${out}"
mkdir -p "${out}"

"${opm}" init "${package}" --default-channel="${CHANNEL}" \
  --description=config/manifests/package-description.md \
  --icon=config/manifests/icon.svg --output=yaml >"${out}/package.yaml"

bundle_file="${out}/${package}.v${VERSION}.yaml"
# opm render of a directory leaves the bundle's image empty (there is no image yet): set it to
# the image make bundle-build pushes, and list it in relatedImages as opm render <image> would.
"${opm}" render ./bundle --output=yaml | awk -v img="${BUNDLE_IMG}" '
  /^image: ""$/ { print "image: " img; next }
  /^schema: olm.bundle$/ { print "- image: " img }
  { print }
' >"${bundle_file}"
grep -q "^name: ${package}.v${VERSION}$" "${bundle_file}" || { echo "bundle is not ${package}.v${VERSION}" >&2; exit 1; }
grep -q "^image: ${BUNDLE_IMG}$" "${bundle_file}" || { echo "bundle image not set in ${bundle_file}" >&2; exit 1; }

# The upgrade graph: this bundle replaces the previous release and skips any older one.
{
  cat <<YAML
---
schema: olm.channel
package: ${package}
name: ${CHANNEL}
entries:
  - name: ${package}.v${VERSION}
    skipRange: "<${VERSION}"
YAML
  [[ -z "${PREVIOUS_VERSION}" ]] || echo "    replaces: ${package}.v${PREVIOUS_VERSION}"
} >"${out}/channel-${CHANNEL}.yaml"

"${opm}" validate catalog
echo "catalog/${package} is valid"
