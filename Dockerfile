# syntax=docker/dockerfile:1
# The animate3d-gateway image.
#
#   docker build -t animate3d-gateway:0.1.0 .
#   docker run --rm -v "$PWD/gateway.yaml:/etc/animate3d-gateway/gateway.yaml:ro" \
#       -p 50051:50051 -p 8080:8080 animate3d-gateway:0.1.0
#
# With -p, the mounted gateway.yaml must listen on 0.0.0.0 (examples/demo.yaml listens on 127.0.0.1,
# which only host networking reaches), and its client secrets come from a mounted 0400 file owned
# by 10001 or an -e variable. Without a Docker engine, scripts/image-check builds this file with
# buildah and runs the image against the simulator (also on a read-only root filesystem).
#
# Stage 1 builds on Debian 12 with the same dependency step the README's scripts use
# (scripts/install-deps: the one list of packages). Stage 2 carries only the runtime libraries and
# the binary and runs as the numeric non-root user 10001:10001 (the Helm chart's runAsUser).

ARG BUILD_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

# ---- build -------------------------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# install-deps alone first, so that the package layer is reused while only the sources change.
COPY scripts/install-deps scripts/install-deps
RUN ./scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
ARG BUILD_TYPE=RelWithDebInfo
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE="${BUILD_TYPE}" -DA3D_WERROR=ON \
 && cmake --build /build -j"$(nproc)" --target animate3d-gateway \
 && install -D -m 0755 -s /build/animate3d-gateway /out/usr/bin/animate3d-gateway

# ---- runtime -----------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Runtime halves of the -dev packages in scripts/install-deps (gRPC 1.51 is libgrpc29 on Debian 12).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates libgrpc29 libprotobuf-c1 libevent-2.1-7 libevent-pthreads-2.1-7 \
      libevent-openssl-2.1-7 libcurl4 libjansson4 libyaml-0-2 libsqlite3-0 libssl3 libhiredis0.14 libpq5 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 a3d \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin a3d \
 && install -d -m 0755 /etc/animate3d-gateway \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/animate3d-gateway
COPY --from=build /out/ /
# Fail the image build, not the first pod start, if a runtime library is missing above.
RUN ldd /usr/bin/animate3d-gateway > /tmp/ldd.txt && ! grep 'not found' /tmp/ldd.txt && rm /tmp/ldd.txt

LABEL org.opencontainers.image.title="animate3d-gateway" \
      org.opencontainers.image.description="gRPC gateway in front of the Animate 3D REST API"
# Numeric, so that Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/animate3d-gateway
EXPOSE 50051 8080
# SIGTERM drains (--grace-ms), SIGHUP reloads the config and secret files.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/animate3d-gateway"]
CMD ["-c", "/etc/animate3d-gateway/gateway.yaml"]
