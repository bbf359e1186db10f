# syntax=docker/dockerfile:1.7
#
# kokoro-tts images (see DEPLOYMENT.md; deploy/ holds the tests that parse this file).
#
#   docker build --target runtime -t kokoro-tts:runtime .   # worker, api, migrate on CUDA 12.8 + cuDNN 9
#   docker build --target api     -t kokoro-tts:api .       # api and migrate only, no CUDA (service mode)
#
# Stages:
#   modules      go mod download (cached until go.mod/go.sum change)
#   build        the binaries, with the same flags as `make build`
#   onnxruntime  the ONNX Runtime GPU release, unpacked and checked (version printed)
#   api          Ubuntu without CUDA: the API in service mode (REDIS_URL set) and migrate
#   runtime      NVIDIA CUDA 12.x runtime + cuDNN 9, ONNX Runtime GPU, espeak-ng, ffmpeg, tini; UID/GID 1001
#                (the last stage, so the default target of a plain `docker build .`)
#
# Why CUDA 12 and not 13: CUDA 13 dropped Pascal, and the production GPU is a Tesla P40 (compute
# capability 6.1). ONNX Runtime's Linux x64 CUDA 12.8 packages carry sm_60 code again after
# microsoft/onnxruntime#31992 (merged 2026-08-11); 1.30.0 (2026-09-10) is the first feature release after
# it. The CUDA 12 builds of 1.2x from early 2025 to mid 2026 only had 7.5/8.0/9.0 and fail on Pascal with
# "no kernel image is available". The worker proves the CUDA provider with a real run at startup and
# refuses to claim CUDA otherwise, and `worker health` (the HEALTHCHECK) fails while KOKORO_DEVICE=cuda is
# not what it runs on.
#
# The binaries are dynamically linked against glibc: all three need cgo (SQLite through
# mattn/go-sqlite3) and the worker loads libonnxruntime.so with dlopen, which a static binary cannot do
# reliably. They are built on Debian bookworm (glibc 2.36) and run on Ubuntu 24.04 (glibc 2.39).

ARG GO_IMAGE=golang:1.26.11-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG BASE_IMAGE=ubuntu:24.04
ARG ORT_VERSION=1.30.0

# ---------------------------------------------------------------------------------------------------
FROM ${GO_IMAGE} AS modules
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download && go mod verify

# ---------------------------------------------------------------------------------------------------
FROM modules AS build
COPY . .
# The flags must stay those of `make build` (deploy/build_test.go checks both and builds with them).
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/api ./cmd/worker ./cmd/migrate ./cmd/kokoro-bench
RUN /out/migrate -version

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS onnxruntime
ARG ORT_VERSION
# The CUDA 12 package has been named onnxruntime-linux-x64-gpu_cuda12-<version>.tgz since 1.27. To use
# your own build (for example one made with CMAKE_CUDA_ARCHITECTURES=61), point ORT_URL at its tarball:
# it must hold lib/libonnxruntime.so* and lib/libonnxruntime_providers_cuda.so.
ARG ORT_URL=https://github.com/microsoft/onnxruntime/releases/download/v${ORT_VERSION}/onnxruntime-linux-x64-gpu_cuda12-${ORT_VERSION}.tgz
# Optional sha256 of the tarball; the build prints the one it got either way, so record it here.
ARG ORT_SHA256=
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN set -eu; \
    curl -fsSL --retry 3 --connect-timeout 20 -o /tmp/ort.tgz "$ORT_URL"; \
    echo "onnxruntime tarball sha256: $(sha256sum /tmp/ort.tgz | cut -d' ' -f1)"; \
    if [ -n "$ORT_SHA256" ]; then echo "$ORT_SHA256  /tmp/ort.tgz" | sha256sum -c -; fi; \
    mkdir -p /opt/onnxruntime; \
    tar -xzf /tmp/ort.tgz -C /opt/onnxruntime --strip-components=1; \
    rm /tmp/ort.tgz; \
    if [ -f /opt/onnxruntime/VERSION_NUMBER ]; then \
      got="$(cat /opt/onnxruntime/VERSION_NUMBER)"; \
      [ "$got" = "$ORT_VERSION" ] || { echo "tarball is ONNX Runtime $got, not ORT_VERSION=$ORT_VERSION" >&2; exit 1; }; \
    else \
      echo "$ORT_VERSION" > /opt/onnxruntime/VERSION_NUMBER; \
    fi; \
    test -e /opt/onnxruntime/lib/libonnxruntime.so; \
    test -e /opt/onnxruntime/lib/libonnxruntime_providers_cuda.so || { echo "not a CUDA build of ONNX Runtime" >&2; exit 1; }; \
    rm -f /opt/onnxruntime/lib/libonnxruntime_providers_tensorrt.so; \
    rm -rf /opt/onnxruntime/include /opt/onnxruntime/lib/cmake /opt/onnxruntime/lib/pkgconfig; \
    echo "ONNX Runtime $(cat /opt/onnxruntime/VERSION_NUMBER) (GPU, CUDA 12)"; \
    ls -l /opt/onnxruntime/lib

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS api
ENV DEBIAN_FRONTEND=noninteractive
# Service mode only: this image has no espeak-ng, ffmpeg or ONNX Runtime, so it cannot run the embedded
# worker (REDIS_URL unset); use the runtime image for that.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini tzdata \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 1001 kokoro \
 && useradd --system --uid 1001 --gid 1001 --home-dir /data --no-create-home --shell /usr/sbin/nologin kokoro \
 && mkdir -p /data \
 && chown 1001:1001 /data
COPY --from=build /out/api /out/migrate /usr/local/bin/
ENV DATA_DIR=/data \
    HTTP_ADDR=:8080 \
    LOG_FORMAT=json
WORKDIR /data
USER 1001:1001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["api"]
# `api health` GETs http://127.0.0.1:<HTTP_ADDR port>/api/health and passes on 200.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 CMD ["api", "health"]

# ---------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS runtime
ARG ORT_VERSION
LABEL org.opencontainers.image.title="kokoro-tts" \
      org.opencontainers.image.description="Kokoro TTS worker, API and migrate on CUDA 12 / cuDNN 9 with ONNX Runtime GPU" \
      io.kokoro-tts.onnxruntime.version="${ORT_VERSION}"
ENV DEBIAN_FRONTEND=noninteractive
# espeak-ng (+ data) is the phonemizer of the Kokoro front end and the fallback engine; ffmpeg encodes
# MP3; tini reaps ffmpeg/espeak-ng children and forwards SIGTERM; sqlite3 is for backups (DEPLOYMENT.md).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng espeak-ng-data ffmpeg tini sqlite3 tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && espeak-ng --version \
 && espeak-ng -q -x --ipa -v en-us "Kokoro" \
 && ffmpeg -hide_banner -version | head -n1
COPY --from=onnxruntime /opt/onnxruntime /opt/onnxruntime
RUN echo /opt/onnxruntime/lib > /etc/ld.so.conf.d/onnxruntime.conf \
 && ldconfig \
 && echo "ONNX Runtime $(cat /opt/onnxruntime/VERSION_NUMBER) in /opt/onnxruntime/lib"
RUN groupadd --system --gid 1001 kokoro \
 && useradd --system --uid 1001 --gid 1001 --home-dir /data --no-create-home --shell /usr/sbin/nologin kokoro \
 && mkdir -p /data /models /backups \
 && chown 1001:1001 /data /backups
COPY --from=build /out/ /usr/local/bin/
ENV DATA_DIR=/data \
    ONNXRUNTIME_LIB=/opt/onnxruntime/lib/libonnxruntime.so \
    ESPEAK_NG_PATH=/usr/bin/espeak-ng \
    FFMPEG_PATH=/usr/bin/ffmpeg \
    LOG_FORMAT=json
WORKDIR /data
USER 1001:1001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["worker"]
# `worker health` passes when this host's worker is announced in Redis with a fresh heartbeat and, with
# KOKORO_DEVICE=cuda, runs on CUDA (proved by a real run at startup). The start period covers loading
# the model and that first run. No curl in the image: the binary is its own health client.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 CMD ["worker", "health"]
