# syntax=docker/dockerfile:1
# burnserve container image: build with `docker build -t burnserve:0.1.0 .` (BuildKit).
#
# Stage 1 compiles the release binary with the official Rust image on Debian bookworm, the same
# toolchain as development (rustc 1.95.0; the workspace's rust-version is 1.92). The full image
# (not -slim) is used because some dependencies compile C through `cc`.
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
# .dockerignore keeps target/, .git and bench results out of the context.
COPY . .
# Cache mounts keep the crate registry and the target directory between builds. They are not
# part of the layer, so the binary is copied out of the mounted target/ into /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin burnserve \
    && install -D -m 0755 target/release/burnserve /out/burnserve

# Stage 2: the same Debian release as the builder, so the binary's glibc matches.
FROM debian:bookworm-slim

# Only CA certificates are added. Debian point releases replace package versions, so pinning
# them would break rebuilds (hadolint DL3008 is waived for that reason).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 burnserve \
    && useradd --system --uid 10001 --gid burnserve --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin burnserve

# repository.path ("models/repository") and config/ are resolved against the working directory.
# The files stay owned by root, so the server can read them but cannot change them.
WORKDIR /app
COPY --from=builder /out/burnserve /usr/local/bin/burnserve
COPY config/ /app/config/
COPY models/repository/ /app/models/repository/
# The job store (jobs.path, "data/jobs") is the one place the server writes: owned by its user.
# Mount a volume here to keep jobs across containers.
RUN mkdir -p /app/data/jobs && chown -R 10001:10001 /app/data

# A numeric UID, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 8001
# burnserve drains on SIGTERM (readiness 503, then the listener closes; see README "Reliability").
STOPSIGNAL SIGTERM
# No HEALTHCHECK here: Kubernetes probes /health and /ready (deploy/kubernetes/deployment.yaml).
ENTRYPOINT ["/usr/local/bin/burnserve"]
# The default server.host is 127.0.0.1, which cannot be reached from outside a container. A CLI
# flag takes precedence over every other setting, so Kubernetes replaces these args with
# `--config FILE`, and that file sets host = "0.0.0.0".
CMD ["--host", "0.0.0.0"]
