# Single stage, uv: the same lock and wheels as the pip variant, installed by uv. One
# Dockerfile for every app: imagetools/images.py assembles the build context from
# dockerfiles/apps.toml (deps/<n>/, tools/, buildtime/, app/: see pip.Dockerfile).
# Hermetic: every RUN works with --network=none; packages come only from the context's
# hash-checked wheels.
# KIND: which stage is the image, `service` or `job` (the last stage says why).
ARG KIND=service
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${BASE_IMAGE} AS job

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/nonroot

# The image's own setup, which only the tools change: the base's setuid/setgid bits (su,
# mount, passwd, ...) dropped, as no service needs them; the nonroot user; an empty venv made
# by uv. uv comes from the hash-locked wheelhouse (its ghcr image cannot be pulled
# everywhere): layer.py checks its wheel against requirements/tools.txt and unpacks the
# binary, which is deleted again in the same step. The image keeps no uv, no pip, no cache.
ARG TOOLS_SHA256=unset
RUN --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    echo "setup inputs: sha256:${TOOLS_SHA256}" \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} + \
 && echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >> /etc/passwd \
 && echo "nonroot:x:65532:" >> /etc/group \
 && mkdir -p /home/nonroot \
 && chown 65532:65532 /home/nonroot \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never /tmp/uv/uv venv --quiet --python python3 /opt/venv \
 && rm -rf /tmp/uv

# Dependencies before source, in three layers (dockerfiles/apps.toml [[layer]]: torch, the
# numeric stack, the rest), so that a bump of a small package re-installs only the last one.
# Each step installs exactly its part of the lock, hash-checked, from the context's wheels,
# then compiles its own files' bytecode, hash-based, exactly as in the pip variant
# (layer.py). A step with no pins adds nothing.
# Every file a step mounts reaches its cache key through DEPS<n>_SHA256, the sha256 of that
# layer's lock and wheels, the tools and the helper scripts, which imagetools/images.py
# (step_inputs) computes from the bytes on disk: Podman keys a RUN on its text, build args and
# parent layer, not on mounted content.
ARG DEPS1_SHA256=unset
RUN --mount=type=bind,source=deps/1,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    echo "dependency layer 1 inputs: sha256:${DEPS1_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv \
 && rm -rf /tmp/uv

ARG DEPS2_SHA256=unset
RUN --mount=type=bind,source=deps/2,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    echo "dependency layer 2 inputs: sha256:${DEPS2_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv \
 && rm -rf /tmp/uv

ARG DEPS3_SHA256=unset
RUN --mount=type=bind,source=deps/3,target=/tmp/build/deps \
    --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    echo "dependency layer 3 inputs: sha256:${DEPS3_SHA256}" \
 && python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /tmp/uv \
 && UV_NO_CACHE=1 /tmp/uv/uv pip install --quiet --python /opt/venv/bin/python \
      --no-index --find-links /tmp/build/deps --require-hashes --no-deps \
      --link-mode copy -r /tmp/build/deps/lock.txt \
 && python3 /tmp/build/bin/layer.py finish /opt/venv \
 && rm -rf /tmp/uv

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
      org.opencontainers.image.description="grocery-ml-containers: ${APP} (uv variant)" \
      org.opencontainers.image.source="${VCS_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"
