#!/usr/bin/env bash
# bench/proxy.sh - build the WeApRous proxy in release mode and run it side by side
# with a tuned nginx reverse proxy over the same two backends (bench/proxy_vs_nginx.sh:
# wrk, alternating rounds, medians, ratios of requests/s, p99 and CPU per request).
#
# Usage: bench/proxy.sh [--rounds N] [--duration S] [--connections C] [--direct]
# Needs nginx and wrk: apt-get install -y nginx-light wrk
# Settings of proxy_vs_nginx.sh (ROUNDS, DURATION, ORDER, CAND_PORT...) pass through.
# PROXY_BIN=path skips the build and runs that binary.
# BASELINE_BIN=path also runs that binary (say, the build before a change) as a second
# candidate in the same rounds: ratios for both, and new/old (docs/benchmarks.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install -y nginx-light wrk curl)" >&2; exit 2; }
done

if [[ -z ${PROXY_BIN:-} ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
  cargo build --release -p proxy --manifest-path "$root/Cargo.toml"
  PROXY_BIN=$CARGO_TARGET_DIR/release/proxy
fi
[[ -x $PROXY_BIN ]] || { echo "error: $PROXY_BIN is not an executable" >&2; exit 2; }

# Warnings only: the proxy logs no line per request, like nginx with access_log off.
export CANDIDATE_CMD="RUST_LOG=warn exec $PROXY_BIN --config {config} --server-ip 127.0.0.1 --server-port {port}"
if [[ -n ${BASELINE_BIN:-} ]]; then
  [[ -x $BASELINE_BIN ]] || { echo "error: $BASELINE_BIN is not an executable" >&2; exit 2; }
  export BASELINE_CMD="RUST_LOG=warn exec $BASELINE_BIN --config {config} --server-ip 127.0.0.1 --server-port {port}"
fi
export ORDER=${ORDER:-abba}
exec "$root/bench/proxy_vs_nginx.sh" "$@"
