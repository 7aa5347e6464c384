#!/usr/bin/env bash
# Debian packages the tests need beyond the build: GNU time (peak-memory checks) and
# chromium, in which the report test opens the HTML.
set -euo pipefail
exec "$(dirname "$0")/apt-need.sh" "the tests" time chromium
