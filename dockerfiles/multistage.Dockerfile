# Multi-stage: uv installs into a venv in a builder stage; the runtime is a distroless-style
# root made from the same base (no shell, no package manager, no pip, no uv, no compiler)
# that carries only the venv's layers and the app. One Dockerfile for every app:
# imagetools/images.py assembles the build context (deps/<n>/, tools/, buildtime/, prune.txt,
# app/: see pip.Dockerfile).
# KIND: which stage is the image, `service` or `job` (the last stage says why).
ARG KIND=service
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- runtime root: the base minus everything a running service does not need ----------
FROM ${BASE_IMAGE} AS runtime-root
# Build stages never run as services (DL3057 wants each stage to say so).
HEALTHCHECK NONE
# The mounted script reaches the cache key through its sha256 (see DEPS<n>_SHA256 below).
ARG ROOTFS_SHA256=unset
RUN --mount=type=bind,source=buildtime/prune_rootfs.py,target=/tmp/prune_rootfs.py \
    echo "runtime-root inputs: sha256:${ROOTFS_SHA256}" \
 && python3 /tmp/prune_rootfs.py /runtime

# ---- builder: the venv in three layers (dockerfiles/apps.toml [[layer]]: torch, the numeric
# stack, the rest), each exactly its part of the lock, pruned of the files listed under `prune`
# in dockerfiles/apps.toml (torch's headers and C++ tests, package test suites), its bytecode
# compiled hash-based, and staged as /tmp/layers/<n>/ for the runtime to copy one by one
# (layer.py). Each step unpacks uv from its hash-checked wheel and removes it after, as in the
# uv variant; a step with no pins adds nothing. Every file a step mounts reaches its cache key
# through DEPS<n>_SHA256 / TOOLS_SHA256 (see the uv variant).
FROM ${BASE_IMAGE} AS builder
HEALTHCHECK NONE
ARG TOOLS_SHA256=unset
RUN --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    echo "setup inputs: sha256:${TOOLS_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never /tmp/uv/uv venv --quiet --python python3 /opt/venv \
 && rm -rf /tmp/uv

ARG DEPS1_SHA256=unset
RUN --mount=type=bind,source=deps/1,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    --mount=type=bind,source=prune.txt,target=/tmp/build/prune.txt \
    echo "dependency layer 1 inputs: sha256:${DEPS1_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv --prune /tmp/build/prune.txt \
      --stage /tmp/layers \
 && rm -rf /tmp/uv

ARG DEPS2_SHA256=unset
RUN --mount=type=bind,source=deps/2,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    --mount=type=bind,source=prune.txt,target=/tmp/build/prune.txt \
    echo "dependency layer 2 inputs: sha256:${DEPS2_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv --prune /tmp/build/prune.txt \
      --stage /tmp/layers \
 && rm -rf /tmp/uv

ARG DEPS3_SHA256=unset
RUN --mount=type=bind,source=deps/3,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    --mount=type=bind,source=prune.txt,target=/tmp/build/prune.txt \
    echo "dependency layer 3 inputs: sha256:${DEPS3_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv --prune /tmp/build/prune.txt \
      --stage /tmp/layers --last \
 && rm -rf /tmp/uv

# ---- runtime ------------------------------------------------------------------------------
FROM scratch AS job
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/bin:/usr/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/nonroot

COPY --from=runtime-root /runtime/ /
COPY --from=builder /tmp/layers/1/ /
COPY --from=builder /tmp/layers/2/ /
COPY --from=builder /tmp/layers/3/ /
COPY app/ /app/

USER 65532:65532
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["/opt/venv/bin/python", "/app/healthcheck.py"]
ENTRYPOINT ["/opt/venv/bin/python", "/app/launch.py"]

# A service declares its port (apps.toml `port`, passed as PORT by imagetools/images.py);
# a job declares none.
FROM job AS service
ARG PORT=8000
EXPOSE ${PORT}

# The image: the `service` or the `job` stage, as KIND says (imagetools/images.py passes it
# from apps.toml), as the last stage rather than a --target (Podman 4.3 applies build-wide
# flags such as --label to the last stage only). hadolint cannot see through ${KIND} that
# the image inherits the job stage's HEALTHCHECK.
# hadolint ignore=DL3057
FROM ${KIND} AS image
# The labels come last. Podman keys a LABEL step on its text, not on the args' values, so
# it runs again, with this commit's values, only when the image's content changed: an
# unchanged image keeps the revision that first built it, which a rebuild of that revision
# reproduces bit for bit (and `make push` publishes it as that revision).
ARG APP=backend
ARG VCS_URL=https://github.com/grocery-ml/grocery-ml-containers
ARG VCS_REF=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="grocery-${APP}" \
      org.opencontainers.image.description="grocery-ml-containers: ${APP} (multistage variant)" \
      org.opencontainers.image.source="${VCS_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"
