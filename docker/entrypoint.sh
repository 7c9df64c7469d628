#!/bin/sh
# Entrypoint of every WeApRous image: a little per-service set-up, then the service
# itself (exec, so it receives SIGTERM directly; compose adds `init: true` on top).
#
#   peer   PEER_ADVERTISE defaults to this container's host name. Under compose that
#          is the container id, which the other containers resolve and which stays
#          the same across restarts of the container (embedded mode: so the peer
#          finds its own database again, peer-<advertised host>-<port>.db in
#          PEER_DATA_DIR; on PostgreSQL the data is in the database anyway).
#   auth   seeds the users of AUTH_SEED_DB (the image sets it to the demo users of
#          db/database.csv; set it empty for none) before serving:
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
