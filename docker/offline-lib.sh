# Shared by the offline image scripts (docker/offline-*.sh): sourced, not run.
# Expects DOCKER, MIRROR and SUITE to be set and log/die to be defined.

# What the official slim images leave out: documentation, manuals, locales, apt lists.
slim_down() { # ROOT
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log \
    "$root"/tmp/* "$root"/var/tmp/*
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  # debootstrap copies the host's resolver settings; Docker writes its own at run time.
  : >"$root"/etc/resolv.conf
  printf 'localhost\n' >"$root"/etc/hostname
}

# A scratch folder for one image: under WEAPROUS_BASE_WORKDIR when it is set (kept for
# inspection), else a fresh one removed at exit. Sets WORK.
scratch_dir() { # NAME
  if [[ -n "${WEAPROUS_BASE_WORKDIR:-}" ]]; then
    WORK=$WEAPROUS_BASE_WORKDIR/$1
    rm -rf --one-file-system "$WORK"
    mkdir -p "$WORK"
  else
    WORK=$(mktemp -d "/var/tmp/weaprous-$1.XXXXXX")
    # shellcheck disable=SC2064 # expand WORK now: it is this call's folder
    trap "rm -rf --one-file-system '$WORK'" EXIT
  fi
}

# Whether TAG may be skipped: it exists and --force was not given (FORCE=1).
image_exists() { # TAG
  ((!${FORCE:-0})) && "$DOCKER" image inspect "$1" >/dev/null 2>&1
}

# debootstrap SUITE (minbase) into ROOT with extra packages, then slim it down.
bootstrap_root() { # ROOT [debootstrap options...]
  local root=$1
  shift
  mkdir -p "$root"
  log "debootstrap $SUITE into $root $*"
  debootstrap --variant=minbase "$@" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; die "debootstrap failed (log above)"; }
}

# Builds TAG FROM scratch with ROOT as its file system (ownership and modes kept);
# the rest of the Dockerfile (ENV, USER, ENTRYPOINT...) comes on standard input.
# `docker import --change` cannot set STOPSIGNAL, VOLUME or USER, a Dockerfile can.
image_from_root() { # ROOT TAG
  local root=$1 tag=$2 ctx
  ctx=$(dirname "$root")/context
  mkdir -p "$ctx"
  tar -C "$root" --numeric-owner -cf "$ctx/rootfs.tar" .
  { printf 'FROM scratch\nADD rootfs.tar /\n'; cat; } >"$ctx/Dockerfile"
  log "docker build $tag"
  "$DOCKER" build -q -t "$tag" "$ctx" >/dev/null
  rm -f "$ctx/rootfs.tar"
  "$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^$tag " >&2 || true
}
