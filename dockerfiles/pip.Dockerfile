# Single stage, plain pip: the baseline. One Dockerfile for every app: imagetools/images.py
# assembles the build context (lock.txt, wheels/, app/) from dockerfiles/apps.toml.
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

# Dependencies before source: this layer depends only on the lock and its wheels, so a
# code-only change reuses it. pip runs from a throw-away venv so the app's venv holds
# exactly the lock; bytecode is compiled hash-based (no timestamps) for reproducibility; torch ships
# one Python 3.12-only test module, which is excluded from compilation.
# The `date` lines are timestamps imagetools/bench_builds.py reads from the build log. The
# base's setuid/setgid bits (su, mount, passwd, ...) are dropped: no service needs them.
# Every file this RUN mounts reaches the cache key through DEPS_SHA256, the sha256 of every
# context file outside app/ that imagetools/images.py (step_inputs) computes from the bytes on
# disk: Podman keys a RUN on its text, build args and parent layer, not on mounted content.
ARG DEPS_SHA256=unset
RUN --mount=type=bind,source=lock.txt,target=/tmp/build/lock.txt \
    --mount=type=bind,source=wheels,target=/tmp/build/wheels \
    echo "dependency inputs: sha256:${DEPS_SHA256}" \
 && date "+bench-mark begin %s.%N" \
 && python3 -m venv /tmp/pip \
 && date "+bench-mark install %s.%N" \
 && python3 -m venv --without-pip /opt/venv \
 && /tmp/pip/bin/python -m pip --python /opt/venv/bin/python install \
      --no-index --find-links /tmp/build/wheels --require-hashes --no-deps \
      --no-compile --no-cache-dir --disable-pip-version-check --quiet \
      -r /tmp/build/lock.txt \
 && date "+bench-mark compile %s.%N" \
 && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      -x "py312_intrinsics" /opt/venv/lib \
 && date "+bench-mark end %s.%N" \
 && rm -rf /tmp/pip \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} + \
 && echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin" >> /etc/passwd \
 && echo "nonroot:x:65532:" >> /etc/group \
 && mkdir -p /home/nonroot \
 && chown 65532:65532 /home/nonroot

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
      org.opencontainers.image.description="grocery-ml-containers: ${APP} (pip variant)" \
      org.opencontainers.image.source="${VCS_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"
