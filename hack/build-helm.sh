#!/usr/bin/env bash
# Builds the pinned Helm CLI into bin/tools/helm-<version>, for the operator chart's tests (lint,
# template, install/upgrade/uninstall). The version is the Helm library helm-operator-plugins
# renders the operand chart with (go.mod).
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.21.1}"
exec bash "$(dirname "$0")/build-go-tool.sh" helm helm.sh/helm/v3 "${HELM_VERSION}" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
