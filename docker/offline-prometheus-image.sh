#!/usr/bin/env bash
# Builds, without pulling anything from a container registry, a stand-in for the
# official Prometheus image under exactly the tag docker-compose.yml names for its
# `prometheus` service (e.g. prom/prometheus:v2.55.1), so that
# `docker compose --profile observability up prometheus` finds it:
#
#   a debootstrap minbase root filesystem of Debian bookworm with Debian's
#   `prometheus` package (2.42: the same configuration format, service discovery,
#   rule files, API and exposition formats as the official 2.x), laid out as the
#   official image is: /bin/prometheus and /bin/promtool, a default configuration in
#   /etc/prometheus/prometheus.yml, the data in /prometheus (a VOLUME owned by
#   nobody), USER nobody, ENTRYPOINT /bin/prometheus with the official default
#   arguments, EXPOSE 9090.
#
# Only for machines that cannot reach Docker Hub (our CI, where the compose smoke test
# checks that Prometheus scrapes every replica); docker/offline-base-images.sh calls it.
# On a normal Docker host compose pulls the official image and this is not needed.
# Debian's package has the older web UI; the API and the scraping are what matter here.
#
# Usage: docker/offline-prometheus-image.sh [--force]
#   --force   rebuild the image even if the tag exists already
# Environment:
#   DOCKER                   the docker client to use (default: /usr/bin/docker, else docker)
#   DEBIAN_MIRROR            the Debian mirror for debootstrap (default: deb.debian.org)
#   WEAPROUS_PROMETHEUS_TAG  the tag to build (default: the compose file's prometheus image)
#   WEAPROUS_BASE_WORKDIR    scratch folder (default: a fresh mktemp -d, removed at exit)
#
# Needs root (debootstrap), debootstrap, and a running Docker engine.
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[offline-prometheus-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=docker/offline-lib.sh
source docker/offline-lib.sh

# The tag: the `image: prom/prometheus:...` line of docker-compose.yml.
TAG=${WEAPROUS_PROMETHEUS_TAG:-$(sed -n 's/^[[:space:]]*image:[[:space:]]*"\{0,1\}\(prom\/prometheus:[A-Za-z0-9._-]*\).*/\1/p' docker-compose.yml | head -1)}
[[ -n "$TAG" ]] || die "docker-compose.yml names no prom/prometheus:<tag> image"

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers ($DOCKER info failed)"

if image_exists "$TAG"; then
  log "$TAG exists already (--force rebuilds it)"
  exit 0
fi

scratch_dir prometheus
root=$WORK/rootfs
bootstrap_root "$root" --include=prometheus
[[ -x $root/usr/bin/prometheus ]] || die "the prometheus package installed no /usr/bin/prometheus"
slim_down "$root"
# The Debian service's own files: the image runs the binary directly.
rm -rf "$root"/etc/init.d/prometheus "$root"/etc/default/prometheus "$root"/etc/logrotate.d/prometheus \
  "$root"/var/lib/prometheus

# The official layout: the data directory owned by nobody (65534), the consoles
# where the official arguments point. On bookworm /bin is /usr/bin, so /bin/prometheus
# is already there.
mkdir -p "$root/prometheus" "$root/usr/share/prometheus"
chown 65534:65534 "$root/prometheus"
ln -sfn /etc/prometheus/console_libraries "$root/usr/share/prometheus/console_libraries"
ln -sfn /etc/prometheus/consoles "$root/usr/share/prometheus/consoles"
version=$(chroot "$root" /usr/bin/prometheus --version 2>&1 | awk 'NR == 1 {print $3}')

image_from_root "$root" "$TAG" <<EOF2
LABEL org.opencontainers.image.description="Offline stand-in for the official $TAG image: Debian $SUITE's prometheus $version (WeApRous docker/offline-prometheus-image.sh)"
USER nobody
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"]
EOF2
log "done (Prometheus $version)"
