#!/usr/bin/env bash
# docker-entrypoint.sh of the offline PostgreSQL stand-in (docker/offline-postgres-image.sh),
# for machines that cannot pull the official `postgres` image. It honours the part of
# the official image's interface that docker-compose.yml and k8s/ use:
#
#   POSTGRES_PASSWORD    the superuser's password; required to initialise a new data
#                        directory (unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER        the superuser (default postgres)
#   POSTGRES_DB          a database created at initialisation (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS more initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  the pg_hba.conf method for the network (default scram-sha-256)
#   PGDATA               the data directory (default /var/lib/postgresql/data)
#   /docker-entrypoint-initdb.d/*.sql, *.sh   run once, after initialisation
#
# Started as root, it fixes the ownership of PGDATA and of the socket folder, then runs
# again as the `postgres` user (uid 999, as in the official image). A new data
# directory gets initdb, the user and the database, with local (socket) connections
# trusted and network ones by password; the server listens on every address (port
# 5432). Then postgres itself replaces this script (PID 1): the image's STOPSIGNAL
# is SIGINT, PostgreSQL's "fast" shutdown, so `docker stop` ends it cleanly in well
# under a second even with clients connected (SIGTERM, the "smart" shutdown, waits for
# every client to disconnect first; SIGQUIT is the "immediate" one).
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }

# As in the official image: `docker run postgres -c x=y` passes options to postgres.
if [[ ${1:-} == -* ]]; then
  set -- postgres "$@"
fi
# Anything else (bash, psql, pg_isready, ...) runs as it is.
if [[ ${1:-} != postgres ]]; then
  exec "$@"
fi

export PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

# As upstream, for any user: PGDATA may be a subdirectory of a volume (Kubernetes,
# where the pod runs as uid 999 and the volume's root belongs to root).
mkdir -p "$PGDATA"
chmod 00700 "$PGDATA" 2>/dev/null || :
if [[ $(id -u) == 0 ]]; then
  mkdir -p /var/run/postgresql
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chown postgres:postgres /var/run/postgresql
  chmod 03775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql "${BASH_SOURCE[0]}" "$@"
fi

# Running as postgres (or as the uid compose's `user:` names) from here on.
if [[ ! -w $PGDATA ]]; then
  log "error: $PGDATA is not writable by uid $(id -u)"
  exit 1
fi

if [[ -s $PGDATA/PG_VERSION ]]; then
  log "PostgreSQL data directory $PGDATA holds a database (version $(cat "$PGDATA/PG_VERSION")): skipping initialisation"
else
  if [[ -z ${POSTGRES_PASSWORD:-} && ${POSTGRES_HOST_AUTH_METHOD:-} != trust ]]; then
    log "error: the database is uninitialised and the superuser password is not specified."
    log "       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, which lets anyone in)."
    exit 1
  fi
  log "initdb $PGDATA (superuser $POSTGRES_USER)"
  # The password through a pipe (never on a command line). The process substitution
  # must be on initdb's own command line: its file descriptor lives as long as it.
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of arguments, as upstream.
  if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") ${POSTGRES_INITDB_ARGS:-} >&2
  else
    initdb --username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-} >&2
  fi
  # The network: every address, by password (the official image's default rule).
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"

  # A temporary server on the Unix socket only: nobody from outside sees a
  # half-initialised database (a pg_isready over TCP fails until the real start).
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start >&2
  psql_local=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER")
  if [[ $POSTGRES_DB != postgres ]]; then
    log "CREATE DATABASE $POSTGRES_DB"
    "${psql_local[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case $f in
      *.sh)
        log "running $f"
        # shellcheck disable=SC1090 # the image's user's scripts
        if [[ -x $f ]]; then "$f"; else . "$f"; fi
        ;;
      *.sql)
        log "running $f"
        "${psql_local[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2
        ;;
      *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >&2
  log "PostgreSQL init process complete; ready for start up"
fi
unset POSTGRES_PASSWORD

exec "$@"
