#!/usr/bin/env bash
# bench/chat.sh - the real-time benchmark of issue 4 (see bench/CHAT.md): builds the
# release weaprous and chatbench binaries (chatbench from its own workspace), installs nats-server when it is missing,
# and runs chatbench, which starts the tracker and two peers itself on loopback and
# prints one line per scenario and round, then the medians and the targets.
#
# Usage: bench/chat.sh [chatbench flags]
#   bench/chat.sh                      # 3 rounds, all scenarios (about 5 minutes)
#   bench/chat.sh --quick              # a smoke run (under a minute)
#   bench/chat.sh --only fixed,nats    # some scenarios; see --help
#   bench/chat.sh --help
# CHATBENCH_SKIP_BUILD=1 runs the binaries already in the target folder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)

# NATS is the ceiling; it is only needed when the nats scenario runs.
need_nats=1
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --only) [[ ${args[i + 1]:-} == *nats* ]] || need_nats=0 ;;
    --only=*) [[ ${args[i]} == *nats* ]] || need_nats=0 ;;
  esac
done

nats=$(command -v nats-server || true)
[[ -z $nats && -x /usr/sbin/nats-server ]] && nats=/usr/sbin/nats-server
if [[ -z $nats && $need_nats == 1 ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "== installing nats-server (Debian package)"
    apt-get install -y nats-server >/dev/null || { apt-get update >/dev/null && apt-get install -y nats-server >/dev/null; }
    nats=$(command -v nats-server || echo /usr/sbin/nats-server)
  else
    echo "error: nats-server not found: sudo apt-get install -y nats-server (or leave nats out of --only)" >&2
    exit 2
  fi
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
# Load on purpose: every rate limit off (chatbench sets it for its services too).
export WEAPROUS_RATE_LIMITS=off
if [[ -z ${CHATBENCH_SKIP_BUILD:-} ]]; then
  cargo build --release -p weaprous --manifest-path "$root/Cargo.toml"
  # Its own workspace (bench/chatbench/Cargo.toml), in the same target folder.
  cargo build --release --manifest-path "$root/bench/chatbench/Cargo.toml"
fi

echo "== $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)${nats:+, $("$nats" --version 2>&1)}"
exec "$CARGO_TARGET_DIR/release/chatbench" \
  --weaprous "$CARGO_TARGET_DIR/release/weaprous" \
  ${nats:+--nats-server "$nats"} \
  "$@"
