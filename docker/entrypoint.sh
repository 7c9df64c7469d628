#!/bin/sh
# Entrypoint of every WeApRous image: a little per-service set-up, then the service
# itself (exec, so it receives SIGTERM directly; compose adds `init: true` on top).
#
#   peer   PEER_ADVERTISE defaults to this container's host name. Under compose that
#          is the container id, which the other containers resolve and which stays
#          the same across restarts of the container, so the peer finds its own
#          database again (peer-<advertised host>-<port>.db in PEER_DATA_DIR).
#   auth   the first start copies the seed user database (AUTH_SEED_DB) to AUTH_DB
#          when AUTH_DB does not exist yet (a new, empty volume).
set -eu

case "${1:-}" in
  peer)
    if [ -z "${PEER_ADVERTISE:-}" ]; then
      PEER_ADVERTISE=${HOSTNAME:-$(hostname)}
      export PEER_ADVERTISE
    fi
    ;;
  auth)
    db=${AUTH_DB:-db/database.csv}
    seed=${AUTH_SEED_DB:-}
    if [ -n "$seed" ] && [ ! -e "$db" ] && [ -r "$seed" ]; then
      mkdir -p "$(dirname "$db")"
      # Copy under a temporary name and rename, so a crash never leaves half a file.
      cp "$seed" "$db.seed-tmp"
      mv "$db.seed-tmp" "$db"
      echo "weaprous-entrypoint: seeded $db from $seed" >&2
    fi
    ;;
esac

exec "$@"
