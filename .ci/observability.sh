#!/usr/bin/env bash
# Observability checks against a real system, with Debian's `prometheus` package (no
# container): run by .ci/run, or by hand after `cargo build -p weaprous`.
#
#   1. `promtool check config`, `check rules` and `test rules` on observability/
#      (every alert has a unit test), and the Kubernetes copy of the rules is equal.
#   2. `weaprous up` in a temporary data directory, on a loopback address of its own
#      (127.x.y.z, so the original's fixed ports do not meet another run's), and
#      traffic through the proxy: pages, log-ins good and bad, an API call, a junk
#      method, a missing path.
#   3. `promtool check metrics` on the /metrics of every service and of the proxy:
#      no problem reported.
#   4. A real Prometheus on 127.0.0.1 (temporary storage) scrapes them every second
#      with observability/prometheus/rules.yml, plus one target that is down; its
#      HTTP API must show every target up, a RED metric (requests by job and by
#      vhost), and WeaprousServiceDown pending or firing for the dead target only.
#
# Bounded: each wait has a deadline (a few minutes in all at worst; .ci/run also
# wraps it in `timeout`). Every process it starts is stopped by its PID on exit,
# SIGTERM included, and the temporary directory removed.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${WEAPROUS_BIN:-${CARGO_TARGET_DIR:-target}/debug/weaprous}
RULES=observability/prometheus/rules.yml

log() { printf '[observability] %s\n' "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# --- tools --------------------------------------------------------------------
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  log "apt-get install prometheus (prometheus and promtool)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus curl python3 >/dev/null
fi
[[ -x $BIN ]] || fail "$BIN is missing: cargo build -p weaprous first (or set WEAPROUS_BIN)"

# --- 1. configuration and rules -----------------------------------------------
log "promtool check config, check rules, test rules"
promtool check config observability/prometheus/prometheus.yml >/dev/null
promtool check rules "$RULES" >/dev/null
(cd observability/prometheus && promtool test rules rules_test.yml)
cmp -s "$RULES" k8s/components/prometheus/rules.yml ||
  fail "k8s/components/prometheus/rules.yml differs from $RULES: copy it over"

# --- 2. a running system ------------------------------------------------------
WORK=$(mktemp -d /tmp/weaprous-observability.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
# A `timeout` around this script (as .ci/run has) stops it with SIGTERM: clean up then too.
trap 'exit 143' TERM INT

# Waits until "$@" succeeds, at most $1 seconds.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

HOST=""
for _ in 1 2 3; do
  candidate=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
  log "weaprous up --host $candidate (data in $WORK/data)"
  # The environment's storage settings do not apply: embedded storage in $WORK.
  env -u WEAPROUS_DATABASE_URL -u OTEL_EXPORTER_OTLP_ENDPOINT RUST_LOG=warn \
    "$BIN" up --host "$candidate" --data-dir "$WORK/data" --proxy-metrics-port 9191 \
    >"$WORK/weaprous.log" 2>&1 &
  pid=$!
  if wait_for 60 curl -fsS "http://$candidate:9191/healthz"; then
    PIDS+=("$pid")
    HOST=$candidate
    break
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  tail -5 "$WORK/weaprous.log" >&2
done
[[ -n $HOST ]] || fail "weaprous up did not start"
wait_for 30 curl -fsS "http://$HOST:9001/healthz" || fail "the first peer does not answer"

log "traffic through the proxy"
edge() { curl -sS -o /dev/null -w '%{http_code}' -H 'Host: localhost:8080' "$@"; }
jar=$WORK/cookies
for _ in $(seq 5); do
  edge "http://$HOST:8080/" >/dev/null
  edge "http://$HOST:8080/login.html" >/dev/null
  edge "http://$HOST:8080/nowhere" >/dev/null
  edge -X FOOBAR "http://$HOST:8080/get-list" >/dev/null
done
code=$(edge -X POST -d 'username=user1&password=wrong' "http://$HOST:8080/login")
[[ $code == 401 || $code == 403 ]] || fail "a wrong password got $code"
code=$(edge -c "$jar" -X POST -d 'username=user1&password=password1' "http://$HOST:8080/login")
[[ $code == 2* || $code == 3* ]] || fail "user1's log-in got $code"
edge -b "$jar" "http://$HOST:8080/get-list" >/dev/null
edge -H 'Host: tracker.localhost:8080' "http://$HOST:8080/login" >/dev/null

# --- 3. promtool check metrics ------------------------------------------------
targets=("tracker=$HOST:9000" "auth=$HOST:9100" "peer=$HOST:9001" "peer=$HOST:9002" "proxy=$HOST:9191")
for target in "${targets[@]}"; do
  address=${target#*=}
  curl -fsS "http://$address/metrics" >"$WORK/metrics.txt" || fail "GET $address/metrics"
  grep -q '^process_cpu_seconds_total' "$WORK/metrics.txt" || fail "$address: no process_cpu_seconds_total"
  grep -q '^weaprous_build_info{' "$WORK/metrics.txt" || fail "$address: no weaprous_build_info"
  if ! problems=$(promtool check metrics <"$WORK/metrics.txt" 2>&1) || [[ -n $problems ]]; then
    fail "promtool check metrics on $address/metrics: $problems"
  fi
  log "promtool check metrics: $address clean ($(wc -l <"$WORK/metrics.txt") lines)"
done

# --- 4. a real Prometheus -----------------------------------------------------
PROM_PORT=$(free_port)
DEAD_PORT=$(free_port) # nothing listens there: a peer that is down
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$RULES
scrape_configs:
  - job_name: tracker
    static_configs: [{ targets: ["$HOST:9000"] }]
  - job_name: auth
    static_configs: [{ targets: ["$HOST:9100"] }]
  - job_name: peer
    static_configs: [{ targets: ["$HOST:9001", "$HOST:9002", "127.0.0.1:$DEAD_PORT"] }]
  - job_name: proxy
    static_configs: [{ targets: ["$HOST:9191"] }]
EOF
log "prometheus on 127.0.0.1:$PROM_PORT"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
API=http://127.0.0.1:$PROM_PORT/api/v1
wait_for 60 curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" || {
  tail -20 "$WORK/prometheus.log" >&2
  fail "prometheus did not become ready"
}

# The value of a PromQL query whose result is one number, else empty.
query() {
  curl -fsS --get --data-urlencode "query=$1" "$API/query" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")'
}
equals() { [[ $(query "$1") == "$2" ]]; }
positive() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) > 0 else 1)' "$(query "$1")"; }

wait_for 30 equals 'count(up{instance!~"127.0.0.1:.*"} == 1)' 5 || fail "Prometheus does not see the 5 targets up"
log "Prometheus sees tracker, auth, 2 peers and the proxy up"
wait_for 30 equals 'count(sum by (job) (http_requests_total{job=~"tracker|auth|peer"}))' 3 ||
  fail "no http_requests_total from every service"
wait_for 30 positive 'sum(proxy_requests_total{vhost="localhost:8080", status_class="2xx"})' ||
  fail "no 2xx requests of vhost localhost:8080 in proxy_requests_total"
wait_for 30 positive 'sum(proxy_requests_total{vhost="localhost:8080", status_class="4xx"})' ||
  fail "no 4xx requests of vhost localhost:8080 in proxy_requests_total"
log "RED metrics queried: requests by job, by vhost and status class"

alert_state() {
  curl -fsS "$API/alerts" | python3 -c '
import json, sys
alerts = json.load(sys.stdin)["data"]["alerts"]
print(" ".join(sorted("%s/%s/%s" % (a["labels"]["alertname"], a["labels"].get("instance", "-"), a["state"]) for a in alerts)))'
}
dead_alerted() { [[ $(alert_state) =~ WeaprousServiceDown/127\.0\.0\.1:$DEAD_PORT/(pending|firing) ]]; }
wait_for 30 dead_alerted || fail "WeaprousServiceDown is not pending for the dead target: $(alert_state)"
state=$(alert_state)
if grep -q "WeaprousServiceDown/$HOST" <<<"$state"; then
  fail "WeaprousServiceDown for a live target: $state"
fi
rules_ok=$(curl -fsS "$API/rules" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
print(all(rule["health"] == "ok" for group in groups for rule in group["rules"]))')
[[ $rules_ok == True ]] || fail "a rule does not evaluate: $(curl -fsS "$API/rules")"
log "alerts: $state; every rule evaluates"

# Every query of the Grafana dashboard is valid PromQL, and those of the RED panels
# have data (Grafana's variables replaced as it would). A rate over the proxy's
# counters needs two scrapes of them, so this waits (bounded) as the checks above do.
cat >"$WORK/dashboard_check.py" <<'PY'
import json, os, sys, urllib.parse, urllib.request
dashboard = json.load(open(sys.argv[1]))
bad, empty, count = [], [], 0
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "1m").replace("$service", "tracker|auth|peer")
        url = os.environ["API"] + "/query?" + urllib.parse.urlencode({"query": expr})
        try:
            answer = json.load(urllib.request.urlopen(url, timeout=10))
        except Exception as err:  # a 400 for a query that does not parse
            bad.append(f"{panel['title']}: {expr}: {err}")
            continue
        count += 1
        if panel["title"].startswith(("Requests by", "Replicas up", "Resident memory")) and not answer["data"]["result"]:
            empty.append(f"{panel['title']}: {expr}")
if bad or empty:
    print("invalid:", *bad, "no data:", *empty, sep="\n", file=sys.stderr)
    sys.exit(1)
print(f"[observability] the dashboard's {count} queries are valid PromQL", file=sys.stderr)
PY
dashboard_ok() { API=$API python3 "$WORK/dashboard_check.py" observability/grafana/dashboards/weaprous.json; }
wait_for 30 dashboard_ok || { dashboard_ok || true; fail "a dashboard query"; }
dashboard_ok
log "all green"
