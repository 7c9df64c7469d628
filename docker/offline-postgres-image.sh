#!/usr/bin/env bash
# Builds, without pulling anything from a container registry, a stand-in for the
# official PostgreSQL image under exactly the tag docker-compose.yml names for its
# `postgres` service (e.g. postgres:15-bookworm), so `docker compose up` finds it:
#
#   a debootstrap minbase root filesystem of Debian bookworm (as the debian:bookworm-slim
#   of docker/offline-base-images.sh) with Debian's postgresql-<major> package, the
#   major taken from the tag; the official image's layout and interface: the postgres
#   user with uid/gid 999, PGDATA=/var/lib/postgresql/data (a VOLUME), the server
#   binaries first on PATH (postgres, initdb, pg_ctl, pg_isready, psql), listen_addresses
#   '*' in the configuration template, EXPOSE 5432, STOPSIGNAL SIGINT, and
#   docker/postgres-entrypoint.sh as docker-entrypoint.sh (POSTGRES_PASSWORD,
#   POSTGRES_USER, POSTGRES_DB, POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD,
#   /docker-entrypoint-initdb.d).
#
# Only for machines that cannot reach Docker Hub (our CI); docker/offline-base-images.sh
# calls it. On a normal Docker host compose pulls the official image and this script is
# not needed. Debian bookworm ships PostgreSQL 15 only, which is why the compose file
# names postgres:15-bookworm: the stand-in is then the same major version as the real
# image (same on-disk format, same SQL) and as the server the tests run against.
#
# Usage: docker/offline-postgres-image.sh [--force]
#   --force   rebuild the image even if the tag exists already
# Environment:
#   DOCKER                 the docker client to use (default: /usr/bin/docker, else docker)
#   DEBIAN_MIRROR          the Debian mirror for debootstrap (default: deb.debian.org)
#   WEAPROUS_POSTGRES_TAG  the tag to build (default: the compose file's postgres image)
#   WEAPROUS_BASE_WORKDIR  scratch folder (default: a fresh mktemp -d, removed at exit)
#
# Needs root (debootstrap), debootstrap, and a running Docker engine.
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[offline-postgres-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=docker/offline-lib.sh
source docker/offline-lib.sh

# The tag: the `image: postgres:...` line of docker-compose.yml.
TAG=${WEAPROUS_POSTGRES_TAG:-$(sed -n 's/^[[:space:]]*image:[[:space:]]*"\{0,1\}\(postgres:[A-Za-z0-9._-]*\).*/\1/p' docker-compose.yml | head -1)}
[[ -n "$TAG" ]] || die "docker-compose.yml names no postgres:<tag> image"
version=${TAG#postgres:}
MAJOR=${version%%[.-]*}
[[ $MAJOR =~ ^[0-9]+$ ]] || die "cannot read a PostgreSQL major version from $TAG"
case $version in
  *-"$SUITE" | "$MAJOR" | "$MAJOR".*) ;;
  *) log "warning: $TAG is not a $SUITE image; building it from Debian $SUITE anyway" ;;
esac

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers ($DOCKER info failed)"

if image_exists "$TAG"; then
  log "$TAG exists already (--force rebuilds it)"
  exit 0
fi

scratch_dir postgres
root=$WORK/rootfs
mkdir -p "$root"

log "debootstrap $SUITE with postgresql-$MAJOR into $root"
debootstrap --variant=minbase --include="postgresql-$MAJOR" "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -20 "$WORK/debootstrap.log" >&2
  grep -q "Couldn't find these debs" "$WORK/debootstrap.log" &&
    log "Debian $SUITE has no postgresql-$MAJOR: name a postgres:<major>-$SUITE image Debian ships in docker-compose.yml"
  die "debootstrap failed (log above)"
}
[[ -x $root/usr/lib/postgresql/$MAJOR/bin/postgres ]] || die "postgresql-$MAJOR installed no server binary"

# The package's postinst made a `main` cluster the Debian way (/etc/postgresql,
# /var/lib/postgresql/<major>/main): the image initialises its own data directory.
rm -rf "$root/etc/postgresql/$MAJOR" "$root/var/lib/postgresql/$MAJOR"

# The official image's postgres user: uid and gid 999, home /var/lib/postgresql.
old_uid=$(chroot "$root" id -u postgres)
old_gid=$(chroot "$root" id -g postgres)
if [[ $old_uid != 999 || $old_gid != 999 ]]; then
  if chroot "$root" getent passwd 999 >/dev/null || chroot "$root" getent group 999 >/dev/null; then
    die "uid or gid 999 is taken in the root filesystem"
  fi
  chroot "$root" groupmod -g 999 postgres
  chroot "$root" usermod -u 999 -g 999 -d /var/lib/postgresql -s /bin/bash postgres
  find "$root" -xdev -uid "$old_uid" -exec chown -h 999 {} +
  find "$root" -xdev -gid "$old_gid" -exec chgrp -h 999 {} +
fi

# The official image's settings: the data directory (mode fixed by the entrypoint),
# the socket folder, and a configuration template that listens on every address.
mkdir -p "$root/var/lib/postgresql/data" "$root/run/postgresql" "$root/docker-entrypoint-initdb.d"
chown 999:999 "$root/var/lib/postgresql" "$root/var/lib/postgresql/data" "$root/run/postgresql"
chmod 1777 "$root/var/lib/postgresql/data"
chmod 3777 "$root/run/postgresql"
sample=$root/usr/share/postgresql/$MAJOR/postgresql.conf.sample
[[ -f $sample ]] || die "$sample is missing"
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"
grep -q "^listen_addresses = '\*'" "$sample" || die "could not set listen_addresses in $sample"
install -m 0755 docker/postgres-entrypoint.sh "$root/usr/local/bin/docker-entrypoint.sh"

slim_down "$root"

log "PostgreSQL $(chroot "$root" "/usr/lib/postgresql/$MAJOR/bin/postgres" --version | awk '{print $3}')"
image_from_root "$root" "$TAG" <<EOF
ENV PG_MAJOR=$MAJOR \\
    PATH=/usr/lib/postgresql/$MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data \\
    LANG=C.UTF-8
LABEL org.opencontainers.image.description="Offline stand-in for the official $TAG image: Debian $SUITE's postgresql-$MAJOR (WeApRous docker/offline-postgres-image.sh)"
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
EOF
log "done"
