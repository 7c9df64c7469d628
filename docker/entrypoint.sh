#!/bin/sh
# Entrypoint of every WeApRous image: a little per-service set-up, then the service
# itself (exec, so it receives SIGTERM directly; compose adds `init: true` on top).
#
#   every  WEAPROUS_SECRETS_DIR set (compose): the session and cluster secrets are
#          files there, `session_secret` and `cluster_secret`, made at random (32
#          bytes from /dev/urandom, hex) by the first container that finds one
#          missing, and kept: the folder is a named volume, so they survive
#          `down`/`up` and every replica reads the same ones. The service gets
#          WEAPROUS_*_SECRET_FILE pointing at them. A WEAPROUS_*_SECRET given in the
#          environment (`.env`) wins, unless it is a public value from the repository
#          (`weaprous-dev-secret-change-me`...), which is dropped.
#   peer   PEER_ADVERTISE defaults to this container's host name. Under compose that
#          is the container id, which the other containers resolve and which stays
#          the same across restarts of the container (embedded mode: so the peer
#          finds its own database again, peer-<advertised host>-<port>.db in
#          PEER_DATA_DIR; on PostgreSQL the data is in the database anyway).
#   auth   seeds the users of AUTH_SEED_DB, when set (none by default; the demo
#          users are /app/db/database.csv, public passwords: development only),
#          before serving:
#          - on PostgreSQL (WEAPROUS_DATABASE_URL or AUTH_DATABASE_URL set): imports
#            them into the database at every start, `auth import-csv`, which skips
#            users that exist (so a changed password is kept) and is safe with
#            several replicas starting at once; retried while the database is not
#            reachable yet (AUTH_SEED_TRIES times, 2 s apart, default 30), then the
#            container exits and its restart policy tries again;
#          - embedded: the first start copies AUTH_SEED_DB to AUTH_DB when AUTH_DB
#            does not exist yet (a new, empty volume).
#          Only when the container serves (`auth` with no subcommand).
set -eu

# Values of the secrets that are public (kit::config::PUBLIC_SECRETS): never used here.
is_public() {
  case $1 in
    '' | weaprous-dev-secret-change-me | weaprous-dev-password-change-me | change-me | changeme | secret | ...) return 0 ;;
    *) return 1 ;;
  esac
}

# secret NAME: WEAPROUS_<NAME> from the environment, else the file in
# WEAPROUS_SECRETS_DIR, made now if missing. Two containers starting at once: each
# writes its own temporary file and links it into place; `ln` fails for the second,
# which then uses the first one's.
secret() {
  name=$1
  var=WEAPROUS_$(echo "$name" | tr '[:lower:]' '[:upper:]')
  eval "given=\${$var:-}"
  if [ -n "$given" ] && ! is_public "$given"; then
    return
  fi
  if [ -n "$given" ]; then
    echo "weaprous-entrypoint: $var is a public value from the repository: ignored, using $WEAPROUS_SECRETS_DIR/$name" >&2
  fi
  unset "$var"
  file=$WEAPROUS_SECRETS_DIR/$name
  if [ ! -s "$file" ]; then
    tmp=$file.$$.tmp
    (umask 077 && head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$tmp")
    if ln "$tmp" "$file" 2>/dev/null; then
      echo "weaprous-entrypoint: made a new random $name in $WEAPROUS_SECRETS_DIR (kept in its volume)" >&2
    fi
    rm -f "$tmp"
  fi
  [ -s "$file" ] || { echo "weaprous-entrypoint: $file is empty or missing" >&2; exit 1; }
  export "${var}_FILE=$file"
}

if [ -n "${WEAPROUS_SECRETS_DIR:-}" ]; then
  secret session_secret
  secret cluster_secret
fi

case "${1:-}" in
  peer)
    if [ -z "${PEER_ADVERTISE:-}" ]; then
      PEER_ADVERTISE=${HOSTNAME:-$(hostname)}
      export PEER_ADVERTISE
    fi
    ;;
  auth)
    serving=yes
    # `auth import-csv FILE`, `auth add-user NAME`...: a subcommand, no seeding.
    if [ $# -gt 1 ]; then
      case $2 in -*) ;; *) serving=no ;; esac
    fi
    db=${AUTH_DB:-db/database.csv}
    seed=${AUTH_SEED_DB:-}
    if [ "$serving" = no ] || [ -z "$seed" ]; then
      :
    elif [ -n "${WEAPROUS_DATABASE_URL:-}${AUTH_DATABASE_URL:-}" ]; then
      [ -r "$seed" ] || { echo "weaprous-entrypoint: AUTH_SEED_DB=$seed is not readable" >&2; exit 1; }
      tries=${AUTH_SEED_TRIES:-30}
      n=1
      until "$1" import-csv "$seed"; do
        if [ "$n" -ge "$tries" ]; then
          echo "weaprous-entrypoint: importing $seed failed $n times: giving up" >&2
          exit 1
        fi
        echo "weaprous-entrypoint: importing $seed failed (try $n of $tries): again in 2 s" >&2
        n=$((n + 1))
        sleep 2
      done
      echo "weaprous-entrypoint: imported the users of $seed into the database" >&2
    elif [ ! -e "$db" ] && [ -r "$seed" ]; then
      mkdir -p "$(dirname "$db")"
      # Copy under a temporary name and rename, so a crash never leaves half a file.
      cp "$seed" "$db.seed-tmp"
      mv "$db.seed-tmp" "$db"
      echo "weaprous-entrypoint: seeded $db from $seed" >&2
    fi
    ;;
esac

exec "$@"
