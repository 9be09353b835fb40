#!/usr/bin/env bash
# Builds promtool (Prometheus's rule checker and rule unit-test runner) into
# bin/tools/promtool-<version>, for test/prometheus.
set -euo pipefail
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
exec bash "$(dirname "$0")/build-go-tool.sh" promtool github.com/prometheus/prometheus "${PROMETHEUS_MODULE_VERSION}" \
  github.com/prometheus/prometheus/cmd/promtool
