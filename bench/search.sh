#!/usr/bin/env bash
# The search benchmark (issue 13): POST /search on a peer over 1,000,000 channel
# messages in 100 channels, on the embedded backend and on PostgreSQL (a fresh
# database on the test server, as the tests find it, dropped at the end; skipped
# when none answers). See docs/benchmarks.md#search.
#
#   bench/search.sh                          # release build, then 3 rounds (~5 min)
#   bench/search.sh --backends embedded --rounds 5 --requests 300
#   SEARCHBENCH_SKIP_BUILD=1 bench/search.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SEARCHBENCH_SKIP_BUILD:-}" ]; then
    nice -n 10 cargo build --release -p testkit --example searchbench
fi
exec "${CARGO_TARGET_DIR:-target}/release/examples/searchbench" "$@"
