#!/usr/bin/env bash
# Debian packages the tests need beyond the build: GNU time (peak-memory checks),
# chromium, in which the report test opens the HTML, and a PostgreSQL server (binaries
# only: tests/postgres.rs runs its own initdb/pg_ctl in a temporary folder) for
# `ts-fetch --source postgres`.
set -euo pipefail
exec "$(dirname "$0")/apt-need.sh" "the tests" time chromium postgresql
