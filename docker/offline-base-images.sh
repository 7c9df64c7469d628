#!/usr/bin/env bash
# Builds, without pulling anything from a container registry, the two base images the
# Dockerfile starts from, under the tags it names:
#
#   debian:bookworm-slim        a debootstrap minbase root filesystem
#   rust:<RUST_VERSION>-bookworm  the same plus gcc, make and pkg-config, this machine's
#                               Rust toolchain, and this machine's CA bundle (so that
#                               cargo inside the build can reach crates.io)
#
# and, side by side, the third-party images docker-compose.yml names, the same minbase
# with Debian's packages, behaving as the official images do:
# docker/offline-postgres-image.sh (postgres:15-bookworm, postgresql-15) and
# docker/offline-prometheus-image.sh (prom/prometheus, Debian's prometheus).
#
# Only for machines that cannot reach Docker Hub (our CI). On a normal Docker host,
# `docker compose up --build` pulls the official images and this script is not needed.
#
# Usage: docker/offline-base-images.sh [--force]
#   --force   rebuild the images even if the tags exist already
# Environment:
#   DOCKER                 the docker client to use (default: /usr/bin/docker, else docker)
#   DEBIAN_MIRROR          the Debian mirror for debootstrap (default: deb.debian.org)
#   WEAPROUS_BASE_WORKDIR  scratch folder (default: a fresh mktemp -d, removed at exit)
#
# Needs root (debootstrap), debootstrap, a running Docker engine, and a Rust toolchain
# installed with rustup on this machine.
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[offline-base-images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=docker/offline-lib.sh
source docker/offline-lib.sh

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker engine answers ($DOCKER info failed)"

# The tag the Dockerfile builds from: `ARG RUST_VERSION=...` and `FROM rust:${RUST_VERSION}-bookworm`.
RUST_VERSION=$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\).*/\1/p' Dockerfile | head -1)
[[ -n "$RUST_VERSION" ]] || die "Dockerfile has no ARG RUST_VERSION=..."
RUST_TAG="rust:${RUST_VERSION}-bookworm"
SLIM_TAG="debian:${SUITE}-slim"

# The host's toolchain: the one `rustc` on PATH runs.
command -v rustc >/dev/null || die "rustc is not on PATH"
SYSROOT=$(rustc --print sysroot)
HOST_RUST=$(rustc --version | awk '{print $2}')
case "$HOST_RUST" in
  "$RUST_VERSION" | "$RUST_VERSION".*) ;;
  *) log "warning: the Dockerfile asks for Rust $RUST_VERSION, this machine has $HOST_RUST; tagging it $RUST_TAG anyway" ;;
esac
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
[[ -x "$SYSROOT/bin/cargo" ]] || die "$SYSROOT/bin/cargo is missing: install the toolchain with rustup"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[[ -s "$CA_BUNDLE" ]] || die "$CA_BUNDLE is missing"

# The PostgreSQL and Prometheus stand-ins: their own debootstraps, in the background
# meanwhile (each checks whether its tag exists itself).
stand_in_args=()
((FORCE)) && stand_in_args=(--force)
DOCKER=$DOCKER DEBIAN_MIRROR=$MIRROR bash docker/offline-postgres-image.sh "${stand_in_args[@]}" &
postgres_pid=$!
DOCKER=$DOCKER DEBIAN_MIRROR=$MIRROR bash docker/offline-prometheus-image.sh "${stand_in_args[@]}" &
prometheus_pid=$!
wait_stand_ins() {
  wait "$postgres_pid" || die "the PostgreSQL image failed (docker/offline-postgres-image.sh, log above)"
  wait "$prometheus_pid" || die "the Prometheus image failed (docker/offline-prometheus-image.sh, log above)"
}

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
if ((!FORCE)) && have "$SLIM_TAG" && have "$RUST_TAG"; then
  log "$SLIM_TAG and $RUST_TAG exist already (--force rebuilds them)"
  wait_stand_ins
  exit 0
fi

scratch_dir base

bootstrap() { # DIR [--include=...]
  bootstrap_root "$@"
  slim_down "$1"
}

# The two root filesystems are independent: fetch them side by side.
bootstrap "$WORK/slim" &
slim_pid=$!
bootstrap "$WORK/builder" --include=ca-certificates,gcc,g++,libc6-dev,make,pkg-config,perl,git &
builder_pid=$!
wait "$slim_pid" || die "the slim root filesystem failed"
wait "$builder_pid" || die "the builder root filesystem failed"

log "docker import $SLIM_TAG"
tar -C "$WORK/slim" --numeric-owner -c . |
  "$DOCKER" import --change 'CMD ["bash"]' - "$SLIM_TAG" >/dev/null

# The builder: the layout of the official rust image (RUSTUP_HOME=/usr/local/rustup,
# CARGO_HOME=/usr/local/cargo, binaries on PATH from /usr/local/cargo/bin), with the
# host's toolchain minus its documentation, and the host's CA bundle.
root=$WORK/builder
toolchain_dir="$root/usr/local/rustup/toolchains/${HOST_RUST}-${TRIPLE}"
log "copying the Rust toolchain $HOST_RUST ($SYSROOT)"
mkdir -p "$toolchain_dir" "$root/usr/local/cargo/bin"
tar -C "$SYSROOT" --exclude=./share/doc -c . | tar -C "$toolchain_dir" -x
for tool in cargo rustc rustdoc; do
  ln -s "../../rustup/toolchains/${HOST_RUST}-${TRIPLE}/bin/$tool" "$root/usr/local/cargo/bin/$tool"
done
install -m 0644 "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"

log "docker import $RUST_TAG"
tar -C "$root" --numeric-owner -c . |
  "$DOCKER" import \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV RUST_VERSION=$HOST_RUST" \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' \
    - "$RUST_TAG" >/dev/null

"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^(debian:$SUITE-slim|rust:$RUST_VERSION-bookworm) " >&2 || true
wait_stand_ins
log "done"
