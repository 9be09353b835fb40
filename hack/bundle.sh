#!/usr/bin/env bash
# Generates the OLM bundle (bundle/manifests, bundle/metadata, bundle/tests/scorecard and
# bundle.Dockerfile) from config/manifests with operator-sdk generate bundle, offline, then
# validates it with the operatorframework suite. Deterministic: a re-run on the same inputs gives
# the same bytes, so make verify can diff it. Edit config/manifests (or the sources it includes),
# never bundle/.
set -euo pipefail

VERSION="${VERSION:-$(cat "$(dirname "$0")/../VERSION")}"
CHANNELS="${CHANNELS:-alpha}"
DEFAULT_CHANNEL="${DEFAULT_CHANNEL:-alpha}"
OPERATOR_IMG="${IMG:-ghcr.io/dittofs/dittofs-operator:v${VERSION}}"
OPERATOR_SDK_VERSION="${OPERATOR_SDK_VERSION:-v1.42.2}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "${root}"
# The release this one replaces in the upgrade graph: the next older version with a section in
# CHANGELOG.md (none for the first release).
PREVIOUS_VERSION="${PREVIOUS_VERSION-$(bash hack/previous-version.sh "${VERSION}")}"
sdk="bin/tools/operator-sdk-${OPERATOR_SDK_VERSION}"
kustomize="bin/tools/kustomize-${KUSTOMIZE_VERSION}"
[[ -x "${sdk}" ]] || bash hack/build-olm-tools.sh >/dev/null
[[ -x "${kustomize}" ]] || { echo "${kustomize} missing: run make kustomize" >&2; exit 1; }

# The operator image in the bundle is the one config/manager pins (kustomize images:).
manager_img="$("${kustomize}" build config/manager | sed -n 's/^ *image: //p' | head -n1)"
if [[ "${manager_img}" != "${OPERATOR_IMG}" ]]; then
  echo "config/manager pins ${manager_img}, expected ${OPERATOR_IMG}" >&2
  exit 1
fi

rm -rf bundle/manifests bundle/metadata bundle/tests bundle.Dockerfile

# --load-restrictor: config/manifests lists single sample files of config/samples (see its
# kustomization.yaml). There is no kubebuilder PROJECT file, so operator-sdk labels the
# project layout "unknown" in the metadata, which is accurate for this hybrid.
"${kustomize}" build --load-restrictor LoadRestrictionsNone config/manifests |
  "${sdk}" generate bundle -q --overwrite \
    --package dittofs-operator --version "${VERSION}" \
    --channels "${CHANNELS}" --default-channel "${DEFAULT_CHANNEL}" \
    --use-image-digests=false --output-dir bundle

csv="bundle/manifests/dittofs-operator.clusterserviceversion.yaml"
[[ -f "${csv}" ]] || { echo "operator-sdk did not write ${csv}" >&2; exit 1; }

# Post-processing, each step deterministic:
# 1. createdAt is the generation time: drop it so the bundle is reproducible.
# 2. relatedImages: operator-sdk lists only RELATED_IMAGE_* env values (the DittoFS image) and
#    overwrites the base's list; add the operator image itself (needed for disconnected mirroring).
# 3. the webhook Service from config/webhook only fed the webhookdefinitions (ports, selector);
#    OLM creates its own <deployment>-service for them, so the bundle does not ship a second one.
# 4. olm.skipRange: this version replaces any earlier one installed (the catalog holds only the
#    latest bundle), so an upgrade is one step from whatever version a cluster runs.
# 5. spec.replaces: the previous release (the upgrade graph's edge OLM follows by default).
awk -v img="${OPERATOR_IMG}" -v range="<${VERSION}" -v prev="${PREVIOUS_VERSION}" '
  /^    createdAt: / { next }
  /^  replaces: / { next }
  { print }
  /^  annotations:$/ && !done { printf "    olm.skipRange: \"%s\"\n", range; done = 1 }
  /^  relatedImages:$/ { printf "  - image: %s\n    name: dittofs-operator\n", img }
  /^  version: / && prev != "" { printf "  replaces: dittofs-operator.v%s\n", prev }
' "${csv}" >"${csv}.tmp"
mv "${csv}.tmp" "${csv}"
grep -q "image: ${OPERATOR_IMG}" "${csv}" || { echo "relatedImages not found in ${csv}" >&2; exit 1; }
rm -f bundle/manifests/webhook-service_v1_service.yaml

# operator-sdk exits 0 on warnings; this project treats a warning as a failure.
out="$("${sdk}" bundle validate ./bundle --select-optional suite=operatorframework 2>&1)" || {
  echo "${out}" >&2
  exit 1
}
echo "${out}"
if grep -qE 'level=(warning|error)' <<<"${out}"; then
  echo "bundle validation reported warnings" >&2
  exit 1
fi
