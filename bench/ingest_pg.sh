#!/usr/bin/env bash
# bench/ingest_pg.sh - durable channel-message ingestion on PostgreSQL, beside pgbench
# (see bench/CHAT.md, "Durable ingestion on PostgreSQL"). Builds the release weaprous
# and chatbench binaries once, installs pgbench/psql when missing, and runs
# `chatbench --only pg-ingest`: each round, on fresh state, the embedded tracker, one
# tracker on PostgreSQL, two tracker replicas on one database, pgbench's single-row
# INSERT (same clients, same duration) and two batch ceilings, in ABBA order across
# rounds; then a table of medians with min-max and the ratios to pgbench.
#
# Usage: bench/ingest_pg.sh [--rounds N] [--duration S] [chatbench flags]
#   bench/ingest_pg.sh --rounds 4 --duration 10
#   bench/ingest_pg.sh --rounds 1 --duration 3 --pg-batch 0      # a smoke run
# The server: WEAPROUS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
# the bench creates and drops its own databases there (chatbench_*).
# CHATBENCH_SKIP_BUILD=1 runs the binaries already in $CARGO_TARGET_DIR/release.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=4
duration=10
rest=()
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    --duration) duration=$2; shift 2 ;;
    --duration=*) duration=${1#*=}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

if ! command -v pgbench >/dev/null || ! command -v psql >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing pgbench and psql (Debian's postgresql-contrib, postgresql-client)"
    apt-get install -y postgresql-client postgresql-contrib >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y postgresql-client postgresql-contrib >/dev/null; }
  else
    echo "error: pgbench or psql not found: sudo apt-get install -y postgresql-client postgresql-contrib" >&2
    exit 2
  fi
fi

server=${WEAPROUS_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if ! psql "$server" -XAtqc 'SELECT 1' >/dev/null; then
  echo "error: no PostgreSQL server answers at WEAPROUS_BENCH_DATABASE_URL (or the local default)" >&2
  exit 2
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
# Load on purpose: every rate limit off (chatbench sets it for its services too).
export WEAPROUS_RATE_LIMITS=off
if [[ -z ${CHATBENCH_SKIP_BUILD:-} ]]; then
  cargo build --release -p weaprous --manifest-path "$root/Cargo.toml"
  # Its own workspace (bench/chatbench/Cargo.toml), in the same target folder.
  cargo build --release --manifest-path "$root/bench/chatbench/Cargo.toml"
fi

echo "== $(date -u +%Y-%m-%dT%H:%MZ), commit ${CHATBENCH_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}, \
$(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg), $(pgbench --version)"
exec "$CARGO_TARGET_DIR/release/chatbench" \
  --weaprous "$CARGO_TARGET_DIR/release/weaprous" \
  --only pg-ingest --rounds "$rounds" --ingest-duration "$duration" \
  "${rest[@]}"
