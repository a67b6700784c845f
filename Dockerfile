# syntax=docker/dockerfile:1
# paper-digest in a container: the built-in daemon on [digest] schedule, as a non-root
# user, with its state (database, lock, outbox) in a volume. Matches the compose example
# in docs/operating.md:
#
#   docker build -t paper-digest .
#   docker run --rm -v "$PWD/config:/config" paper-digest init /config/paper-digest.toml
#   docker compose up -d            # or: docker run -d -v "$PWD/config:/config:ro" -v state:/var/lib/paper-digest paper-digest
#
# A config written by `init` under /config keeps its database in /var/lib/paper-digest.

ARG RUST_VERSION=1.89
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -m 0755 target/release/paper-digest /usr/local/bin/paper-digest

FROM debian:${DEBIAN}-slim
# ca-certificates for the `native` trust store of any TLS peer; tini-like reaping comes
# from `init: true` in compose (or `docker run --init`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 paper-digest \
 && useradd --system --uid 10001 --gid paper-digest --home-dir /var/lib/paper-digest --shell /usr/sbin/nologin paper-digest \
 && install -d -o paper-digest -g paper-digest -m 0700 /var/lib/paper-digest \
 && install -d -m 0755 /config
COPY --from=build /usr/local/bin/paper-digest /usr/local/bin/paper-digest
COPY LICENSE-MIT LICENSE-APACHE README.md /usr/share/doc/paper-digest/

USER paper-digest:paper-digest
WORKDIR /var/lib/paper-digest
VOLUME ["/var/lib/paper-digest"]
ENV PAPER_DIGEST_CONFIG=/config/paper-digest.toml
# The daemon finishes the sends in flight on SIGTERM (give it `stop_grace_period: 90s`).
STOPSIGNAL SIGTERM
ENTRYPOINT ["paper-digest"]
CMD ["daemon", "--config", "/config/paper-digest.toml"]
