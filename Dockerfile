# WeApRous images: one builder stage compiles every service once, then one small
# runtime image per service.
#
#   docker build --target tracker -t weaprous/tracker .      (also: peer, auth, proxy)
#   docker compose build                                     (all four, see docker-compose.yml)
#
# Needs BuildKit (the default builder of Docker 23+ and of `docker compose`): the
# cache mounts below keep crates.io downloads and compiled dependencies between
# builds, so a change to our code recompiles our crates only.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------
# builder: every service binary, compiled once.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# The workspace's release profile keeps line tables for backtraces; in the images
# the symbols (function names in backtraces) are kept and the debug info dropped,
# which makes each binary about five times smaller. `--build-arg RELEASE_DEBUG=line-tables-only`
# keeps it.
ARG RELEASE_DEBUG=none
# The commit `weaprous_build_info` reports (.git is not in the build context):
# `docker compose build --build-arg WEAPROUS_GIT_COMMIT=$(git rev-parse --short HEAD)`.
ARG WEAPROUS_GIT_COMMIT=
ENV CARGO_PROFILE_RELEASE_DEBUG=${RELEASE_DEBUG} \
    CARGO_TERM_COLOR=never \
    WEAPROUS_GIT_COMMIT=${WEAPROUS_GIT_COMMIT}
WORKDIR /src
# The workspace: its manifest and lock file, and every member (cargo needs all of
# them to load the workspace). .dockerignore keeps target folders and data out.
COPY Cargo.toml Cargo.lock ./
COPY shared shared
COPY services services
COPY testkit testkit
# The target folder lives in a cache mount, so the binaries are copied out of it in
# the same step.
RUN --mount=type=cache,id=weaprous-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=weaprous-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=weaprous-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p tracker -p peer -p auth -p proxy \
    && mkdir -p /out \
    && cp target/release/tracker target/release/peer target/release/auth target/release/proxy /out/

# ---------------------------------------------------------------------------------
# runtime: what every service image shares. No package is installed: the binaries
# need only glibc and libgcc, which the slim image has, and a CA bundle for the calls
# that may go over HTTPS (an OTLP collector, auth behind TLS), taken from the builder.
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# A fixed, non-root user (uid 10001), so volumes and Kubernetes' runAsUser agree.
RUN groupadd --system --gid 10001 weaprous \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin weaprous \
    && mkdir -p /data /app /run/weaprous-secrets \
    && chown 10001:10001 /data /run/weaprous-secrets \
    && chmod 0700 /run/weaprous-secrets
# The entrypoint also makes the secrets, once, in WEAPROUS_SECRETS_DIR (compose: a
# named volume mounted at /run/weaprous-secrets, which takes this folder's owner).
COPY docker/entrypoint.sh /usr/local/bin/weaprous-entrypoint
COPY docker/healthcheck.sh /usr/local/bin/healthcheck
WORKDIR /app
ENV WEAPROUS_LOG_FORMAT=json \
    RUST_LOG=info
ENTRYPOINT ["/usr/local/bin/weaprous-entrypoint"]

# ---------------------------------------------------------------------------------
FROM runtime AS tracker
COPY --from=builder /out/tracker /usr/local/bin/tracker
# The tracker serves the log-in page of the original's `POST /login` flow.
COPY www /app/www
ENV TRACKER_SERVER_IP=0.0.0.0 \
    TRACKER_SERVER_PORT=9000 \
    TRACKER_DATA_DIR=/data \
    TRACKER_WWW_DIR=/app/www
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 CMD ["healthcheck", "9000"]
CMD ["tracker"]

# ---------------------------------------------------------------------------------
FROM runtime AS peer
COPY --from=builder /out/peer /usr/local/bin/peer
COPY www /app/www
# PEER_ADVERTISE: the entrypoint sets it to the container's host name when unset.
ENV PEER_SERVER_IP=0.0.0.0 \
    PEER_SERVER_PORT=9001 \
    PEER_DATA_DIR=/data \
    PEER_WWW_DIR=/app/www
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9001
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 CMD ["healthcheck", "9001"]
CMD ["peer"]

# ---------------------------------------------------------------------------------
FROM runtime AS auth
COPY --from=builder /out/auth /usr/local/bin/auth
# The demo users (public passwords), for development only: nothing loads them unless
# asked (AUTH_SEED_DB=/app/db/database.csv, or `auth import-csv /app/db/database.csv`,
# which the compose profile `demo` runs).
COPY db/database.csv /app/db/database.csv
# Hashes reuse memory auth keeps (one 19 MiB set per hash at once), so no allocator
# setting is needed to keep its memory bounded (docs/security.md#log-in-cost).
ENV AUTH_SERVER_IP=0.0.0.0 \
    AUTH_SERVER_PORT=9100 \
    AUTH_DB=/data/database.csv
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9100
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 CMD ["healthcheck", "9100"]
CMD ["auth"]

# ---------------------------------------------------------------------------------
FROM runtime AS proxy
COPY --from=builder /out/proxy /usr/local/bin/proxy
COPY config /app/config
ENV PROXY_SERVER_IP=0.0.0.0 \
    PROXY_SERVER_PORT=8080 \
    PROXY_CONFIG=/app/config/proxy.compose.conf
USER 10001:10001
EXPOSE 8080 8443
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 CMD ["healthcheck", "8080"]
CMD ["proxy"]
