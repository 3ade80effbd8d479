# The hanwha-delivery image: one binary that runs every shape by its
# arguments (the all-in-one by default, `serve <service>`, `serve gateway`,
# `users add ...`). Non-root, no shell, data under /data.
#
#   docker build -t hanwha-delivery .        # or: podman build --format docker ...
#
# Base images are build arguments. Offline, from a binary built outside
# (what CI does: deploy/podman/build-image), the target `runtime-prebuilt`
# puts the binary into the same runtime, on a base made locally:
#
#   podman build --format docker --target runtime-prebuilt \
#     --build-arg RUNTIME_IMAGE=localhost/hanwha-runtime-base:bookworm CONTEXT
#
# where CONTEXT holds this file, prebuilt/hanwha-delivery and an empty
# prebuilt/data/. A stage is built only when the target needs it, so that
# build never pulls the Rust image, and the default one never looks for
# prebuilt/.

ARG RUST_IMAGE=docker.io/library/rust:1-bookworm
# distroless cc: glibc and libgcc (all the binary links), CA certificates,
# tzdata, no shell, no package manager.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The caches keep the registry and the target dir between builds; the
# binary is copied out of the cache mount into the stage's layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hanwha-delivery \
    && install -D -m 0755 target/release/hanwha-delivery /out/hanwha-delivery \
    && install -d -m 0700 /out/data

# The runtime, whichever way the binary is made.
FROM ${RUNTIME_IMAGE} AS runtime-base
# Listen on every interface of the container (the default, loopback,
# is unreachable from outside it); data on the volume. Off loopback there
# is no demo data unless HANWHA_DEMO=1: the start prints how to create the
# first admin (`hanwha-delivery users add --role admin NAME`).
# MALLOC_ARENA_MAX: glibc makes up to 8 malloc arenas per core, each
# keeping freed memory; two keep the resident size near what is in use (the
# request path allocates little and each database has one writer task).
# NO_COLOR: container logs are no terminal.
ENV HANWHA_LISTEN=0.0.0.0:8080 \
    HANWHA_DATA_DIR=/data \
    MALLOC_ARENA_MAX=2 \
    NO_COLOR=1
# 8080 the all-in-one; `serve` takes its port from HANWHA_SERVICE_ADDR
# (8081-8087 the services, 8088 the gateway).
EXPOSE 8080
USER 65532:65532
# SIGTERM drains: not ready at once, in-flight requests finish (up to 10 s),
# the outbox is published, then exit 0. Give `docker stop`/`podman stop`
# --time 30 (compose: stop_grace_period, Kubernetes:
# terminationGracePeriodSeconds, whose default is 30).
STOPSIGNAL SIGTERM
# The binary probes itself: no shell or curl in the image. It probes the
# address the process listens on, from the same environment.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/hanwha-delivery", "health", "--timeout-ms", "2000"]
ENTRYPOINT ["/usr/local/bin/hanwha-delivery"]

# A binary built outside, from the build context.
FROM runtime-base AS runtime-prebuilt
COPY prebuilt/hanwha-delivery /usr/local/bin/hanwha-delivery
# The volume's mount point, owned by the user the process runs as: a new
# named volume takes this directory's owner, so the process can write it.
COPY --chown=65532:65532 prebuilt/data /data
VOLUME ["/data"]

# The default target: the binary compiled by the builder stage.
FROM runtime-base AS runtime
COPY --from=builder /out/hanwha-delivery /usr/local/bin/hanwha-delivery
COPY --from=builder --chown=65532:65532 /out/data /data
VOLUME ["/data"]
