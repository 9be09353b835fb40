#!/usr/bin/env bash
# Prints the release before version $1: the next older "## [x.y.z]" section of CHANGELOG.md
# (nothing for the first release). The bundle's spec.replaces and the catalog channel use it.
set -euo pipefail
cd "$(dirname "$0")/.."
awk -v v="$1" '/^## \[[0-9]+\.[0-9]+\.[0-9]+\]/ {
  s = $0; gsub(/^## \[|\].*$/, "", s)
  if (found) { print s; exit }
  if (s == v) found = 1
}' CHANGELOG.md
