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
# HAPROXY=1 runs HAProxy (bench/other_proxy.sh; apt-get install haproxy) as that second
# candidate instead: the proxy, HAProxy and nginx side by side in the same rounds.
# PROTO=https (HTTP/1.1 over TLS, wrk) or PROTO=h2 (HTTP/2 over TLS, h2load; apt-get
# install nghttp2-client) measures HTTPS: every target gets the same certificate.
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
tls=""
[[ ${PROTO:-http} != http ]] && tls=" --tls-port {tls_port} --tls-cert {cert} --tls-key {key}"
export CANDIDATE_CMD="RUST_LOG=warn exec $PROXY_BIN --config {config} --server-ip 127.0.0.1 --server-port {port}$tls"
if [[ ${HAPROXY:-0} == 1 ]]; then
  command -v haproxy >/dev/null || { echo "error: haproxy not found (apt-get install -y haproxy)" >&2; exit 2; }
  haproxy_tls=""
  [[ -n $tls ]] && haproxy_tls=" {tls_port} {cert} {key}"
  export BASELINE_CMD="exec $root/bench/other_proxy.sh haproxy {config} {port}$haproxy_tls"
elif [[ -n ${BASELINE_BIN:-} ]]; then
  [[ -x $BASELINE_BIN ]] || { echo "error: $BASELINE_BIN is not an executable" >&2; exit 2; }
  export BASELINE_CMD="RUST_LOG=warn exec $BASELINE_BIN --config {config} --server-ip 127.0.0.1 --server-port {port}$tls"
fi
export ORDER=${ORDER:-abba}
exec "$root/bench/proxy_vs_nginx.sh" "$@"
