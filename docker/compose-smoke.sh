#!/usr/bin/env bash
# End-to-end test of the compose deployment, through the proxy on 127.0.0.1 only:
#
#   1. `docker compose up -d --wait` (auth, tracker, 2 peers, proxy; Jaeger is left
#      out because its image cannot be pulled on our machines), timed;
#   1b. secure by default: every service has the same random secrets, made on the
#      first start; no demo user can log in and the log-in page offers none; the
#      first user is added with `auth add-user` and logs in; the tracker's log-in
#      sends the browser to the proxy's public URL, which answers; then the demo
#      users are loaded (`--profile demo`, the `demo-users` service) for the rest;
#   2. two users log in and land on two different peer replicas, exchange a channel
#      message and a direct message; tracker.localhost and auth.localhost answer;
#   3. `--scale peer=3`: the new replica joins the tracker's pool and gets traffic;
#      Prometheus (`--profile observability`) scrapes every replica of every service;
#   4. the peer container hosting one user is killed (SIGKILL): requests go on
#      through the other replicas, and no acknowledged message is lost, channel or
#      direct, once the container is started again;
#   5. `docker compose down` finishes in under 10 s; after `up` again the data and
#      the secrets are the same (a session from before still works); after
#      `down -v` a fresh deployment has other secrets.
#
# Usage: docker/compose-smoke.sh [--engine] [--offline-base] [--build]
#   --engine        install and start a Docker engine, stop it and restore the host
#                   firewall at exit (docker/engine.sh); for CI machines without one
#   --offline-base  build the base images without a registry (docker/offline-base-images.sh)
#   --build         `docker compose build` first (timed)
# Environment: WEAPROUS_HTTP_PORT (8080), SMOKE_PROJECT (compose project, weaprous-smoke),
# SMOKE_DOCKER (the docker client, default /usr/bin/docker, else docker on PATH).
# Needs curl and jq. Whatever happens, the exit trap runs `docker compose down -v`
# and, with --engine, stops the engine it started.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=0 OFFLINE=0 BUILD=0
for arg in "$@"; do
  case $arg in
    --engine) ENGINE=1 ;;
    --offline-base) OFFLINE=1 ;;
    --build) BUILD=1 ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

# Debian's docker.io client (/usr/bin/docker) when there is one: it builds with the
# engine's own BuildKit, where a newer client may insist on the buildx plugin.
pick_docker() {
  DOCKER=${SMOKE_DOCKER:-/usr/bin/docker}
  [[ -x $DOCKER ]] || DOCKER=docker
}
pick_docker
PROJECT=${SMOKE_PROJECT:-weaprous-smoke}
PORT=${WEAPROUS_HTTP_PORT:-8080}
HTTPS_PORT=${WEAPROUS_HTTPS_PORT:-8443}
BASE="http://127.0.0.1:$PORT"
SERVICES=(auth tracker peer proxy)
# Jaeger is not started here: nothing to export to.
export OTEL_EXPORTER_OTLP_ENDPOINT=
export WEAPROUS_HTTP_BIND=127.0.0.1 WEAPROUS_HTTP_PORT=$PORT WEAPROUS_HTTPS_PORT=$HTTPS_PORT
WORK=$(mktemp -d /tmp/weaprous-smoke.XXXXXX)
PASSED=0
FIGURES=()

log() { printf '\n== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }
pass() { PASSED=$((PASSED + 1)); printf 'ok %d - %s\n' "$PASSED" "$*"; }
fail() {
  printf 'not ok - %s\n' "$*"
  [[ -s $WORK/body ]] && { printf '  last response: '; head -c 600 "$WORK/body"; echo; }
  exit 1
}
figure() { FIGURES+=("$1: $2"); printf '   %s: %s\n' "$1" "$2"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
compose() { "$DOCKER" compose -p "$PROJECT" "$@"; }

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && "$DOCKER" info >/dev/null 2>&1; then
    log "failure: state and recent logs"
    compose ps -a
    compose logs --no-color --tail 40
  fi
  if "$DOCKER" info >/dev/null 2>&1; then
    compose --profile observability down -v --remove-orphans -t 10 >/dev/null 2>&1
  fi
  ((ENGINE)) && bash docker/engine.sh stop
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in curl jq; do command -v $tool >/dev/null || { echo "$tool is required" >&2; exit 1; }; done

if ((ENGINE)); then
  log "Docker engine"
  bash docker/engine.sh start
  pick_docker
fi
if ((OFFLINE)); then
  log "base images, built offline"
  t=$(now)
  bash docker/offline-base-images.sh
  figure "offline base images" "$(since "$t") s"
fi

log "docker compose config"
compose config --quiet && pass "docker compose config is valid"
compose down -v --remove-orphans -t 5 >/dev/null 2>&1 || true

if ((BUILD)); then
  log "docker compose build"
  t=$(now)
  compose --progress=plain build >"$WORK/build.log" 2>&1 || { tail -60 "$WORK/build.log"; fail "docker compose build"; }
  grep -E 'Finished `release`' "$WORK/build.log" || true
  figure "docker compose build" "$(since "$t") s"
  pass "docker compose build"
fi
for service in "${SERVICES[@]}"; do
  figure "image weaprous/$service" "$("$DOCKER" image inspect --format '{{.Size}}' "weaprous/$service:${WEAPROUS_IMAGE_TAG:-dev}" |
    awk '{ printf "%.1f MB", $1 / 1e6 }')"
done

log "docker compose up -d --wait ${SERVICES[*]}"
t=$(now)
compose up -d --wait --wait-timeout 120 "${SERVICES[@]}" || fail "compose up --wait"
figure "up to healthy" "$(since "$t") s"
pass "every service healthy (2 peer replicas)"
[[ $(compose ps -q peer | wc -l) == 2 ]] || fail "two peer replicas by default"

# The secrets every service uses: files in the `secrets` volume (docker/entrypoint.sh).
secret_of() { # SERVICE NAME: the secret NAME as that service's container sees it
  compose exec -T "$1" cat "/run/weaprous-secrets/$2" 2>/dev/null
}
SESSION_SECRET=$(secret_of auth session_secret) || fail "auth has a session secret file"
CLUSTER_SECRET=$(secret_of auth cluster_secret) || fail "auth has a cluster secret file"
[[ $SESSION_SECRET =~ ^[0-9a-f]{64}$ && $CLUSTER_SECRET =~ ^[0-9a-f]{64}$ ]] ||
  fail "the secrets are 32 random bytes in hex"
[[ $SESSION_SECRET != "$CLUSTER_SECRET" ]] || fail "the two secrets differ"
for service in tracker peer; do
  [[ $(secret_of "$service" session_secret) == "$SESSION_SECRET" && $(secret_of "$service" cluster_secret) == "$CLUSTER_SECRET" ]] ||
    fail "$service uses the same secrets as auth"
done
compose logs --no-color auth tracker peer >"$WORK/start.log" 2>&1
grep -q 'invalid configuration' "$WORK/start.log" && fail "a service refused its configuration"
pass "the first start made random session and cluster secrets, shared by every service"

# --- HTTP helpers: every request goes to the published port on 127.0.0.1 ----------

# Every wait below is bounded; on top of that, the HTTP part of the test must be
# over within 10 minutes.
DEADLINE=$((SECONDS + 600))

# call JAR METHOD PATH [FORM] [HOST]: sets STATUS; the body is in $WORK/body.
call() {
  local jar=$1 method=$2 path=$3 form=${4-} host=${5-}
  ((SECONDS < DEADLINE)) || fail "the test ran past its 10-minute deadline"
  local args=(-sS --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}'
    -b "$jar" -c "$jar" -H 'Accept: application/json' -X "$method")
  [[ -n $form ]] && args+=(--data "$form")
  [[ -n $host ]] && args+=(-H "Host: $host")
  rm -f "$WORK/body" "$WORK/headers"
  STATUS=$(curl "${args[@]}" "$BASE$path" 2>"$WORK/curl.err") || STATUS=${STATUS:-000}
}
expect() { # STATUS... (one of)
  local want
  for want in "$@"; do [[ $STATUS == "$want" ]] && return 0; done
  fail "expected HTTP $* from the last request, got $STATUS"
}
body() { jq -r "$1" "$WORK/body"; }
cookie() { awk -v name="$2" '$6 == name { print $7 }' "$1"; }
new_jar() { local jar="$WORK/$1.jar"; : >"$jar"; echo "$jar"; }
pin_jar() { # JAR BACKEND_COOKIE: a jar that the proxy sends to that replica
  printf '127.0.0.1\tFALSE\t/\tFALSE\t0\tweaprous_backend\t%s\n' "$2" >"$1"
}
replica() { # JAR: the replica that serves this jar (its advertised address)
  call "$1" GET /me
  expect 200
  body .peer
}
login() { # JAR USER PASSWORD
  call "$1" POST /login "username=$2&password=$3"
  expect 200
  [[ $(body .status) == success && $(body .username) == "$2" ]] || fail "log-in of $2"
  [[ -n $(cookie "$1" weaprous_session) ]] || fail "log-in of $2 set no session cookie"
}

# Which replica answers an unpinned request, and the sticky cookie that leads there.
# The probe user (user4) does it, so the users of the test stay where they are.
declare -A STICKY=()
PROBE_TOKEN=""
discover() { # WANT: probe until WANT replicas are known (bounded)
  local want=$1 tries=0 jar peer id
  jar=$(new_jar probe)
  if [[ -z $PROBE_TOKEN ]]; then
    login "$jar" user4 password4
    PROBE_TOKEN=$(cookie "$jar" weaprous_session)
  fi
  STICKY=()
  while ((${#STICKY[@]} < want && tries < 30)); do
    tries=$((tries + 1))
    printf '127.0.0.1\tFALSE\t/\tFALSE\t0\tweaprous_session\t%s\n' "$PROBE_TOKEN" >"$jar"
    call "$jar" GET /me
    if [[ $STATUS == 200 ]]; then
      peer=$(body .peer)
      id=$(cookie "$jar" weaprous_backend)
      [[ -n $id ]] && STICKY[$peer]=$id
    fi
    ((${#STICKY[@]} < want)) && sleep 0.5
  done
  ((${#STICKY[@]} >= want))
}

# check_prometheus TRACKERS AUTHS PEERS PROXIES: `--profile observability` starts
# Prometheus (observability/prometheus/), which finds the replicas by DNS; every one
# of them must become a target that is up, per job, within a bounded wait. Prometheus
# is removed again afterwards, so the rest of the test runs as before.
check_prometheus() {
  local want="tracker=$1 auth=$2 peer=$3 proxy=$4" got="" t
  t=$(now)
  compose --profile observability up -d --no-deps prometheus || fail "start Prometheus"
  for _ in $(seq 1 60); do
    got=$(curl -sS --max-time 5 "http://127.0.0.1:9090/api/v1/targets?state=active" 2>/dev/null |
      jq -r '[.data.activeTargets[] | select(.health == "up") | .labels.job]
             | group_by(.) | map("\(.[0])=\(length)") | map(select(startswith("prometheus") | not)) | join(" ")' 2>/dev/null) ||
      got=""
    [[ $got == "auth=$2 peer=$3 proxy=$4 tracker=$1" ]] && break
    sleep 2
  done
  figure "Prometheus: every replica scraped and up" "$(since "$t") s"
  [[ $got == "auth=$2 peer=$3 proxy=$4 tracker=$1" ]] || fail "Prometheus's targets that are up: want $want, got '$got'"
  curl -sS --max-time 5 "http://127.0.0.1:9090/api/v1/query" --data-urlencode \
    'query=count by (job) (weaprous_build_info)' -o "$WORK/prom.json" || fail "query Prometheus"
  [[ $(jq -r '[.data.result[] | select(.metric.job == "peer") | .value[1]][0]' "$WORK/prom.json") == "$3" ]] ||
    fail "weaprous_build_info from each of the $3 peers ($(cat "$WORK/prom.json"))"
  compose --profile observability rm -sf prometheus >/dev/null 2>&1 || fail "remove Prometheus"
  pass "Prometheus scrapes every replica (${want}), each up, weaprous_build_info from every peer"
}

# --- cluster mode (PostgreSQL) ------------------------------------------------------

# check_postgres_cluster: what cluster mode promises, once every service keeps its data
# in the compose file's PostgreSQL. Called after the main checks, with the stack up
# (it uses the HTTP helpers above and leaves 2 peers and 2 trackers running).
#   1. `--scale peer=5`: five users, each on another replica, send channel and direct
#      messages; `--scale peer=2`: every user still reads all of theirs, once;
#   2. `--scale tracker=2`, a small load (two users sending channel and direct
#      messages), one tracker container killed (SIGKILL) under it: the load goes on,
#      and every acknowledged message is there afterwards, once.
check_postgres_cluster() {
  local stamp i j u n step jar peer t victim killed_at
  stamp=$(date +%s)

  # JAR USER PASSWORD: a new user (201), retried while sign-ups are throttled.
  cluster_register() {
    for _ in $(seq 1 10); do
      call "$1" POST /register "username=$2&password=$3"
      [[ $STATUS == 429 || $STATUS == 503 ]] || break
      sleep 1
    done
    expect 201
    [[ $(body .username) == "$2" && -n $(cookie "$1" weaprous_session) ]] || fail "sign-up of $2"
  }
  # JAR CHANNEL: the ids of the channel's history (up to 500) on stdout.
  cluster_channel_ids() {
    for _ in $(seq 1 20); do
      call "$1" POST /get-channel-messages "channel_name=$2&limit=500"
      [[ $STATUS == 200 ]] && break
      sleep 1
    done
    expect 200
    body '.messages.messages[].id | tostring'
  }
  # JAR WITH: the ids of the conversation with WITH (up to 500) on stdout.
  cluster_dm_ids() {
    for _ in $(seq 1 20); do
      call "$1" GET "/get-conversation?with=$2&limit=500"
      [[ $STATUS == 200 ]] && break
      sleep 1
    done
    expect 200
    body '.messages[].id | tostring'
  }
  # WANT_FILE GOT_FILE WHAT: every id of WANT_FILE is in GOT_FILE exactly once.
  cluster_all_once() {
    local missing dups
    missing=$(sort -u "$1" | comm -23 - <(sort -u "$2") | head -5 | tr '\n' ' ')
    [[ -z $missing ]] || fail "$3: acknowledged messages missing: $missing"
    dups=$(sort "$2" | uniq -d | head -5 | tr '\n' ' ')
    [[ -z $dups ]] || fail "$3: messages listed twice: $dups"
  }

  log "cluster: docker compose up -d --scale peer=5"
  t=$(now)
  compose up -d --wait --wait-timeout 180 --no-recreate --scale peer=5 "${SERVICES[@]}" || fail "scale peers to 5"
  figure "scale peer=5 to healthy" "$(since "$t") s"
  [[ $(compose ps -q peer | wc -l) == 5 ]] || fail "five peer replicas"
  discover 5 || fail "the proxy sends traffic to all 5 replicas (saw ${#STICKY[@]})"
  local replicas=("${!STICKY[@]}") users=() jars=()
  declare -A homes=()
  for i in 0 1 2 3 4; do
    u="cl${stamp}u$i"
    jar=$(new_jar "cluster-$u")
    pin_jar "$jar" "${STICKY[${replicas[$i]}]}"
    cluster_register "$jar" "$u" "pw-$u-secret"
    peer=$(replica "$jar")
    homes[$peer]=1
    users+=("$u")
    jars+=("$jar")
  done
  ((${#homes[@]} == 5)) || fail "the 5 users are on 5 replicas (on ${#homes[@]})"
  pass "5 new users, one on each of the 5 replicas"

  local channel="cluster-$stamp" sent="$WORK/cluster-sent"
  : >"$sent.channel"
  call "${jars[0]}" POST /create-channel "channel_name=$channel"
  expect 201
  for i in 1 2 3 4; do
    call "${jars[$i]}" POST /join-channel "channel_name=$channel"
    expect 200
  done
  for n in 1 2; do
    for i in 0 1 2 3 4; do
      call "${jars[$i]}" POST /send-channel-message "channel_name=$channel&message=${users[$i]}+says+$n"
      expect 200
      body '.id | tostring' >>"$sent.channel"
    done
  done
  # Direct messages: each user to the next two (so each has 4 counterparts' worth of
  # conversation), acknowledged with 200 (delivered) or 202 (queued).
  for i in 0 1 2 3 4; do : >"$sent.dm.$i"; done
  for i in 0 1 2 3 4; do
    for step in 1 2; do
      j=$(((i + step) % 5))
      call "${jars[$i]}" POST /connect-peer "username=${users[$j]}"
      expect 200
      for n in 1 2; do
        call "${jars[$i]}" POST /send-peer "username=${users[$j]}&message=dm-$n-to-${users[$j]}"
        expect 200 202
        body '.id | tostring' | tee -a "$sent.dm.$i" >>"$sent.dm.$j"
      done
    done
  done
  pass "on 5 replicas: $(wc -l <"$sent.channel") channel messages and $((5 * 2 * 2)) direct messages acknowledged"

  log "cluster: docker compose up -d --scale peer=2"
  t=$(now)
  compose up -d --wait --wait-timeout 120 --no-recreate --scale peer=2 "${SERVICES[@]}" || fail "scale peers to 2"
  figure "scale peer=5 to 2" "$(since "$t") s"
  [[ $(compose ps -q peer | wc -l) == 2 ]] || fail "two peer replicas"
  # Every user, wherever the proxy sends them now (3 of 5 had their replica removed),
  # reads the whole channel and every direct message they sent or received, once.
  for i in 0 1 2 3 4; do
    cluster_channel_ids "${jars[$i]}" "$channel" >"$WORK/cluster-got"
    cluster_all_once "$sent.channel" "$WORK/cluster-got" "channel $channel read by ${users[$i]}"
    : >"$WORK/cluster-got"
    for step in 1 2 3 4; do
      cluster_dm_ids "${jars[$i]}" "${users[$(((i + step) % 5))]}" >>"$WORK/cluster-got"
    done
    cluster_all_once "$sent.dm.$i" "$WORK/cluster-got" "direct messages of ${users[$i]}"
  done
  pass "after scaling 5 -> 2 peers, all 5 users read every channel and direct message of theirs, once"

  log "cluster: docker compose up -d --scale tracker=2, then kill one under load"
  t=$(now)
  compose up -d --wait --wait-timeout 120 --no-recreate --scale tracker=2 --scale peer=2 "${SERVICES[@]}" ||
    fail "scale trackers to 2"
  figure "scale tracker=2 to healthy" "$(since "$t") s"
  [[ $(compose ps -q tracker | wc -l) == 2 ]] || fail "two tracker replicas"
  local load_channel="cluster-load-$stamp" stop="$WORK/cluster-load.stop" pids=()
  call "${jars[0]}" POST /create-channel "channel_name=$load_channel"
  expect 201
  call "${jars[1]}" POST /join-channel "channel_name=$load_channel"
  expect 200
  rm -f "$stop"
  # The load: user0 and user1 each send a channel message and a direct message to the
  # other, again and again, with curl of their own (the helpers' files are the
  # foreground's). Acknowledged ids, with when, go to cluster-load.<i>.
  cluster_load() { # I J
    local i=$1 j=$2 n=0 out="$WORK/cluster-load.$1" status
    : >"$out"
    while [[ ! -e $stop ]] && ((n < 300)); do
      n=$((n + 1))
      status=$(curl -sS --max-time 10 -o "$out.body" -w '%{http_code}' -b "${jars[$i]}" -c "${jars[$i]}" \
        -H 'Accept: application/json' --data "channel_name=$load_channel&message=load-$i-$n" \
        "$BASE/send-channel-message" 2>/dev/null) || status=000
      if [[ $status == 200 ]]; then
        printf '%s channel %s\n' "$(now)" "$(jq -r '.id | tostring' "$out.body")" >>"$out"
      else
        printf '%s failed %s\n' "$(now)" "$status" >>"$out"
      fi
      status=$(curl -sS --max-time 10 -o "$out.body" -w '%{http_code}' -b "${jars[$i]}" -c "${jars[$i]}" \
        -H 'Accept: application/json' --data "username=${users[$j]}&message=load-dm-$n" \
        "$BASE/send-peer" 2>/dev/null) || status=000
      if [[ $status == 200 || $status == 202 ]]; then
        printf '%s dm %s\n' "$(now)" "$(jq -r '.id | tostring' "$out.body")" >>"$out"
      else
        printf '%s failed %s\n' "$(now)" "$status" >>"$out"
      fi
      sleep 0.2
    done
  }
  cluster_load 0 1 &
  pids+=($!)
  cluster_load 1 0 &
  pids+=($!)
  sleep 3
  victim=$(compose ps -q tracker | head -1)
  "$DOCKER" kill --signal KILL "$victim" >/dev/null
  killed_at=$(now)
  sleep 10
  touch "$stop"
  for i in "${pids[@]}"; do wait "$i" || true; done
  local acked failed after
  acked=$(cat "$WORK"/cluster-load.[01] | awk '$2 != "failed"' | wc -l)
  failed=$(cat "$WORK"/cluster-load.[01] | awk '$2 == "failed"' | wc -l)
  after=$(cat "$WORK"/cluster-load.[01] | awk -v k="$killed_at" '$2 != "failed" && $1 > k + 2' | wc -l)
  figure "load around the tracker kill" "$acked acknowledged, $failed failed, $after acknowledged from 2 s after the kill"
  ((after > 0)) || fail "the load goes on with one tracker killed"

  awk '$2 == "channel" { print $3 }' "$WORK"/cluster-load.[01] >"$sent.load.channel"
  cluster_channel_ids "${jars[1]}" "$load_channel" >"$WORK/cluster-got"
  cluster_all_once "$sent.load.channel" "$WORK/cluster-got" "channel $load_channel after the tracker kill"
  for i in 0 1; do
    awk '$2 == "dm" { print $3 }' "$WORK"/cluster-load.[01] >"$sent.load.dm"
    cluster_dm_ids "${jars[$i]}" "${users[$((1 - i))]}" >"$WORK/cluster-got"
    cluster_all_once "$sent.load.dm" "$WORK/cluster-got" "direct messages of ${users[$i]} after the tracker kill"
  done
  pass "one tracker killed under load: all $acked acknowledged messages are there, once"

  # Put the killed tracker back (`docker kill` is a manual stop for the restart policy).
  "$DOCKER" start "$victim" >/dev/null
  compose up -d --wait --wait-timeout 120 --no-recreate --scale tracker=2 --scale peer=2 "${SERVICES[@]}" ||
    fail "the killed tracker is back"
  pass "the killed tracker replica is back and healthy"
}

log "secure by default: no demo users, the first user, the tracker's log-in"
NOBODY=$(new_jar nobody)
call "$NOBODY" GET /login-options
expect 200
[[ $(body '.demo_accounts | length') == 0 && $(body .sign_up) == true ]] || fail "no demo accounts offered, sign-up on"
for i in 1 2 3 4; do
  call "$NOBODY" POST /login "username=user$i&password=password$i"
  expect 401
done
pass "no demo user can log in, and /login-options offers none"
call "$NOBODY" GET /login
expect 200
grep -q 'data-testid="demo-accounts" hidden' "$WORK/body" || fail "the page's demo section is hidden"
grep -q 'password1' "$WORK/body" && fail "the page names no demo password"
pass "the log-in page shows no demo chips"

# The README's first user: `docker compose exec -T auth auth add-user NAME`, the
# password on stdin.
printf 'first-user-password-%s\n' "$$" | compose exec -T auth auth add-user firstadmin >"$WORK/add-user.log" 2>&1 ||
  { cat "$WORK/add-user.log"; fail "auth add-user"; }
FIRST=$(new_jar first)
login "$FIRST" firstadmin "first-user-password-$$"
pass "the first user, added with auth add-user, logs in"

# The original's log-in on tracker.localhost: the browser goes to the proxy's public
# URL (WEAPROUS_PUBLIC_URL, default http://localhost:$PORT), which it can reach.
rm -f "$WORK/body" "$WORK/headers"
STATUS=$(curl -sS --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -H "Host: tracker.localhost:$PORT" \
  --data "username=firstadmin&password=first-user-password-$$" "$BASE/login") || STATUS=000
expect 302
location=$(awk 'tolower($1) == "location:" { print $2 }' "$WORK/headers" | tr -d '\r')
[[ $location == "http://localhost:$PORT/" ]] || fail "the tracker's log-in sends the browser to http://localhost:$PORT/, not $location"
landed=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --resolve "localhost:$PORT:127.0.0.1" "$location") || landed=000
[[ $landed == 200 || $landed == 303 ]] || fail "the tracker's log-in lands on a reachable page ($location answered $landed)"
pass "the tracker's log-in lands on $location, which answers $landed"

log "docker compose --profile demo: the demo users, for the rest of this test"
compose --profile demo run --rm demo-users >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; fail "the demo-users service"; }
call "$NOBODY" GET /login-options
expect 200
[[ $(body '[.demo_accounts[].username] | join(",")') == "user1,user2,user3,user4" ]] ||
  fail "with the demo profile, the page offers user1..user4"
pass "--profile demo loads user1..user4, and the log-in page offers them"

log "log-in through the proxy: two users, two replicas"
discover 2 || fail "the proxy spreads unpinned requests over 2 replicas (saw ${#STICKY[@]})"
pass "the proxy round-robins over both replicas: ${!STICKY[*]}"
peers=("${!STICKY[@]}")
ALICE=$(new_jar alice)
BOB=$(new_jar bob)
pin_jar "$ALICE" "${STICKY[${peers[0]}]}"
pin_jar "$BOB" "${STICKY[${peers[1]}]}"
login "$ALICE" user1 password1
login "$BOB" user2 password2
alice_peer=$(replica "$ALICE")
bob_peer=$(replica "$BOB")
[[ $alice_peer != "$bob_peer" ]] || fail "user1 and user2 on different replicas ($alice_peer, $bob_peer)"
pass "user1 is on $alice_peer, user2 on $bob_peer"
grep -qi '^x-served-by: peer@' "$WORK/headers" || fail "x-served-by names the peer"

log "vhosts: tracker.localhost and auth.localhost"
call "$ALICE" GET /healthz "" "tracker.localhost:$PORT"
expect 200
grep -qi '^x-served-by: tracker@' "$WORK/headers" || fail "tracker.localhost reaches the tracker"
call "$ALICE" GET /healthz "" "auth.localhost:$PORT"
expect 200
grep -qi '^x-served-by: auth@' "$WORK/headers" || fail "auth.localhost reaches auth"
pass "tracker.localhost:$PORT and auth.localhost:$PORT reach the tracker and auth"

log "HTTPS on $HTTPS_PORT with the development certificate"
STATUS=$(curl -sS --max-time 10 -k -o "$WORK/body" -w '%{http_code} %{ssl_verify_result}' \
  --resolve "localhost:$HTTPS_PORT:127.0.0.1" "https://localhost:$HTTPS_PORT/login-options") || STATUS=000
[[ ${STATUS%% *} == 200 ]] || fail "GET https://localhost:$HTTPS_PORT/login-options answered $STATUS"
tls=$(curl -sS --max-time 10 -k -o /dev/null -w '%{scheme}' --resolve "localhost:$HTTPS_PORT:127.0.0.1" \
  "https://localhost:$HTTPS_PORT/healthz" -v 2>&1 | grep -o 'TLSv1\.[23]' | head -1) || tls=
[[ -n $tls ]] || fail "HTTPS speaks TLS 1.2 or 1.3"
pass "https://localhost:$HTTPS_PORT answers over $tls (self-signed development certificate)"

log "a channel message and a direct message"
CHANNEL="smoke-$(date +%s)"
call "$ALICE" POST /create-channel "channel_name=$CHANNEL"
expect 201
call "$BOB" POST /join-channel "channel_name=$CHANNEL"
expect 200
call "$ALICE" POST /send-channel-message "channel_name=$CHANNEL&message=Xin+ch%C3%A0o+from+alice"
expect 200
CHANNEL_IDS=("$(body .id)")
call "$BOB" POST /get-channel-messages "channel_name=$CHANNEL"
expect 200
[[ $(body '[.messages.messages[] | select(.username == "user1")] | .[0].text') == "Xin chào from alice" ]] ||
  fail "user2 reads user1's channel message"
call "$BOB" POST /send-channel-message "channel_name=$CHANNEL&message=hi+alice"
expect 200
CHANNEL_IDS+=("$(body .id)")
pass "channel $CHANNEL: user1 and user2 read each other"

call "$ALICE" POST /connect-peer "username=user2"
expect 200
call "$ALICE" POST /send-peer "username=user2&message=dm-hello"
expect 200
[[ $(body .delivered) == true ]] || fail "the direct message is delivered at once"
DM_IDS=("$(body .id)")
call "$BOB" GET "/get-conversation?with=user1"
expect 200
[[ $(body '[.messages[] | select(.message == "dm-hello")] | length') == 1 ]] || fail "user2 has user1's direct message"
call "$BOB" POST /send-peer "username=user1&message=dm-reply"
expect 200
call "$ALICE" GET "/get-conversation?with=user2"
expect 200
[[ $(body '[.messages[] | select(.message == "dm-reply")] | length') == 1 ]] || fail "user1 has user2's reply"
pass "direct messages both ways between the two replicas"

log "docker compose up -d --scale peer=3"
t=$(now)
compose up -d --wait --wait-timeout 120 --no-recreate --scale peer=3 "${SERVICES[@]}" || fail "scale to 3"
figure "scale peer=3 to healthy" "$(since "$t") s"
[[ $(compose ps -q peer | wc -l) == 3 ]] || fail "three peer replicas"
bearer=$(cookie "$ALICE" weaprous_session)
in_pool=0
for _ in $(seq 1 30); do
  STATUS=$(curl -sS --max-time 10 -o "$WORK/body" -w '%{http_code}' -H "Host: tracker.localhost:$PORT" \
    -H "Authorization: Bearer $bearer" "$BASE/get-peers" 2>/dev/null) || STATUS=000
  if [[ $STATUS == 200 ]]; then
    in_pool=$(jq 'length' "$WORK/body")
    ((in_pool >= 3)) && break
  fi
  sleep 1
done
((in_pool == 3)) || fail "the tracker's pool has the 3 replicas (has $in_pool)"
pass "the tracker's pool lists 3 live peers"
discover 3 || fail "the proxy sends traffic to the new replica (saw ${!STICKY[*]})"
new_peer=""
for peer in "${!STICKY[@]}"; do
  [[ $peer != "$alice_peer" && $peer != "$bob_peer" ]] && new_peer=$peer
done
[[ -n $new_peer ]] || fail "a third replica answers"
CAROL=$(new_jar carol)
pin_jar "$CAROL" "${STICKY[$new_peer]}"
login "$CAROL" user3 password3
[[ $(replica "$CAROL") == "$new_peer" ]] || fail "user3 lands on the new replica"
call "$CAROL" POST /join-channel "channel_name=$CHANNEL"
expect 200
call "$CAROL" POST /send-channel-message "channel_name=$CHANNEL&message=carol+joined"
expect 200
CHANNEL_IDS+=("$(body .id)")
call "$CAROL" POST /send-peer "username=user2&message=dm-from-carol"
expect 200 202
DM_IDS+=("$(body .id)")
pass "the new replica $new_peer serves user3: channel and direct messages"

log "Prometheus (profile observability) scrapes every replica"
check_prometheus 1 1 3 1

log "kill the replica of user2 ($bob_peer)"
# Acknowledged before the kill: more direct messages to user2, stored on its replica.
for i in 1 2 3 4 5; do
  call "$ALICE" POST /send-peer "username=user2&message=dm-before-$i"
  expect 200
  [[ $(body .delivered) == true ]] || fail "dm-before-$i delivered"
  DM_IDS+=("$(body .id)")
done
victim=""
for id in $(compose ps -q peer); do
  # The replica advertises its host name (the container id, 12 characters).
  [[ $bob_peer == "${id:0:12}":* ]] && victim=$id
done
[[ -n $victim ]] || fail "the container of $bob_peer"
"$DOCKER" kill --signal KILL "$victim" >/dev/null
killed_at=$(now)

# user2's next requests carry a sticky cookie for the dead replica: the proxy must
# route them around it. Count the failures on the way (bounded wait).
failures=0
for _ in $(seq 1 20); do
  call "$BOB" POST /get-channel-messages "channel_name=$CHANNEL"
  [[ $STATUS == 200 ]] && break
  failures=$((failures + 1))
  sleep 1
done
expect 200
figure "requests failed while routing around the dead replica" "$failures"
figure "first answer after the kill" "$(since "$killed_at") s"
bob_now=$(replica "$BOB")
[[ $bob_now != "$bob_peer" ]] || fail "user2 is served by another replica"
pass "with its replica dead, user2 is served by $bob_now"

# Acknowledged while the replica is down: channel messages, and direct messages to
# user2 (delivered to its new replica, or queued in user1's outbox: 202).
during_delivered=0
for i in 1 2 3; do
  call "$ALICE" POST /send-channel-message "channel_name=$CHANNEL&message=during-$i"
  expect 200
  CHANNEL_IDS+=("$(body .id)")
  call "$ALICE" POST /send-peer "username=user2&message=dm-during-$i"
  expect 200 202
  DM_IDS+=("$(body .id)")
  [[ $STATUS == 200 ]] && during_delivered=$((during_delivered + 1))
done
figure "direct messages to user2 while its replica was down: delivered at once" "$during_delivered of 3 (the rest queued)"
call "$BOB" POST /get-channel-messages "channel_name=$CHANNEL"
expect 200
for id in "${CHANNEL_IDS[@]}"; do
  [[ $(jq --arg id "$id" '[.messages.messages[] | select((.id | tostring) == $id)] | length' "$WORK/body") == 1 ]] ||
    fail "channel message $id is in the history once"
done
pass "every acknowledged channel message (${#CHANNEL_IDS[@]}) is in the history, once"

log "start the killed container again"
# `docker kill` counts as a manual stop: the restart policy leaves it down.
if [[ $("$DOCKER" inspect --format '{{.State.Running}}' "$victim") != true ]]; then
  "$DOCKER" start "$victim" >/dev/null
fi
healthy=""
for _ in $(seq 1 60); do
  healthy=$("$DOCKER" inspect --format '{{.State.Health.Status}}' "$victim")
  [[ $healthy == healthy ]] && break
  sleep 1
done
[[ $healthy == healthy ]] || fail "the restarted replica is healthy again"
pass "the killed replica is back ($bob_peer, same database)"

# Every direct message acknowledged to user1 (200 or 202) is readable by user2 at the
# replica that is user2's home now, exactly once: queued ones arrive after the restart
# (retried with backoff), and the part of user2's mailbox that the restarted replica
# kept is handed over to user2's home when it is back. Read the way user2's browser
# does (their own cookies, sticky to their replica); wait a bounded while.
missing=()
dup=""
held=0
for _ in $(seq 1 30); do
  declare -A seen=()
  dup=""
  held=0
  for sender in user1 user3; do
    call "$BOB" GET "/get-conversation?with=$sender&limit=500"
    [[ $STATUS == 200 ]] || continue
    while read -r id; do seen[$id]=1; done < <(body '.messages[] | select(.to == "user2") | .id')
    held=$((held + $(body '[.messages[] | select(.to == "user2")] | length')))
    [[ $(body '[.messages[].id] | length') == $(body '[.messages[].id] | unique | length') ]] || dup=$sender
  done
  missing=()
  for id in "${DM_IDS[@]}"; do [[ -n ${seen[$id]:-} ]] || missing+=("$id"); done
  ((${#missing[@]} == 0)) && [[ -z $dup ]] && break
  sleep 2
done
figure "user2's direct messages at user2's replica" "$held (at $(replica "$BOB"))"
[[ -z $dup ]] || fail "a direct message from $dup appears twice"
((${#missing[@]} == 0)) || fail "acknowledged direct messages missing: ${missing[*]}"
pass "every acknowledged direct message to user2 (${#DM_IDS[@]}) is there, once, at user2's replica"

log "cluster mode: 5 peers and back to 2, a tracker replica killed under load"
check_postgres_cluster

log "docker compose down"
t=$(now)
compose down -t 10
down_s=$(since "$t")
figure "docker compose down" "$down_s s"
awk -v s="$down_s" 'BEGIN { exit !(s < 10) }' || fail "compose down took $down_s s (limit 10 s)"
pass "docker compose down in $down_s s"

log "the named volumes keep the data across down and up"
compose up -d --wait --wait-timeout 120 "${SERVICES[@]}" || fail "compose up again"
AGAIN=$(new_jar again)
login "$AGAIN" user1 password1
call "$AGAIN" POST /get-channel-messages "channel_name=$CHANNEL"
expect 200
for id in "${CHANNEL_IDS[@]}"; do
  [[ $(jq --arg id "$id" '[.messages.messages[] | select((.id | tostring) == $id)] | length' "$WORK/body") == 1 ]] ||
    fail "channel message $id survives down and up"
done
pass "after down and up, user1 logs in and the channel history (${#CHANNEL_IDS[@]} messages) is all there"
[[ $(secret_of auth session_secret) == "$SESSION_SECRET" && $(secret_of peer cluster_secret) == "$CLUSTER_SECRET" ]] ||
  fail "the secrets survive down and up"
call "$FIRST" GET /me
expect 200
pass "the secrets survive down and up: a session from before still works"

log "a fresh deployment (down -v, up) makes other secrets"
compose down -v -t 10 >/dev/null 2>&1
compose up -d --wait --wait-timeout 120 auth || fail "compose up auth on a fresh volume"
fresh=$(secret_of auth session_secret) || fail "the fresh deployment has a session secret"
[[ $fresh =~ ^[0-9a-f]{64}$ && $fresh != "$SESSION_SECRET" ]] || fail "a fresh deployment has a secret of its own"
[[ $(secret_of auth cluster_secret) != "$CLUSTER_SECRET" ]] || fail "a fresh deployment has a cluster secret of its own"
pass "two fresh deployments have different secrets"
compose down -v -t 10 >/dev/null 2>&1

log "figures"
printf '  %s\n' "${FIGURES[@]}"
echo "compose-smoke: $PASSED passed, 0 failed"
