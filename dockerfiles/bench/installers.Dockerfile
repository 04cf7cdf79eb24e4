# Bench only, never shipped (imagetools/bench_builds.py, scenarios `lab` and `cache`): the
# labs' way of installing, pip against uv, each resolving an app's requirements/<app>.in and
# downloading the wheels from a package index. The bench serves that index on the build
# host's loopback (a static PEP 503 index of the wheelhouse) and builds with --network=host,
# so every run repeats without the internet. The `date` lines time the install command
# (read as layer.py's own progress lines are).
# Targets: pip-lab and uv-lab (no installer cache, as the labs' Dockerfiles), pip-cache and
# uv-cache (BuildKit cache mounts for the installers' caches, kept between builds).
# No HEALTHCHECK: these images never run.
# hadolint global ignore=DL3057
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${BASE_IMAGE} AS setup
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
# The same locked pip and uv as the images' builds (checked against requirements/tools.txt),
# and an empty venv: not timed, and cached across the bench's builds.
RUN --mount=type=bind,source=tools,target=/tmp/build/tools \
    --mount=type=bind,source=buildtime,target=/tmp/build/bin \
    python3 /tmp/build/bin/layer.py tools /tmp/build/tools --uv /usr/local/bin \
 && python3 -m venv --without-pip /opt/venv

# A fresh RUN_ID for every measured build: its install step never comes from the layer cache.
FROM setup AS pip-lab
ARG INDEX_URL
ARG RUN_ID
RUN --mount=type=bind,source=.,target=/tmp/build \
    echo "run ${RUN_ID}" \
 && date "+bench: tools ready @%s.%N" \
 && python /tmp/build/tools/pip.whl/pip install --no-cache-dir --disable-pip-version-check \
      --progress-bar off --index-url "${INDEX_URL}" -r /tmp/build/requirements.in \
 && date "+bench: installed @%s.%N" && date "+bench: finished @%s.%N"

FROM setup AS uv-lab
ARG INDEX_URL
ARG RUN_ID
RUN --mount=type=bind,source=.,target=/tmp/build \
    echo "run ${RUN_ID}" \
 && date "+bench: tools ready @%s.%N" \
 && uv pip install --no-cache --python /opt/venv/bin/python --index-url "${INDEX_URL}" \
      -r /tmp/build/requirements.in \
 && date "+bench: installed @%s.%N" && date "+bench: finished @%s.%N"

FROM setup AS pip-cache
ARG INDEX_URL
ARG RUN_ID
RUN --mount=type=bind,source=.,target=/tmp/build \
    --mount=type=cache,target=/root/.cache/pip,id=grocery-bench-pip \
    echo "run ${RUN_ID}" \
 && date "+bench: tools ready @%s.%N" \
 && python /tmp/build/tools/pip.whl/pip install --disable-pip-version-check \
      --progress-bar off --index-url "${INDEX_URL}" -r /tmp/build/requirements.in \
 && date "+bench: installed @%s.%N" && date "+bench: finished @%s.%N"

# uv's guide: a cache mount and UV_LINK_MODE=copy (the cache is another file system).
FROM setup AS uv-cache
ARG INDEX_URL
ARG RUN_ID
ENV UV_LINK_MODE=copy
RUN --mount=type=bind,source=.,target=/tmp/build \
    --mount=type=cache,target=/root/.cache/uv,id=grocery-bench-uv \
    echo "run ${RUN_ID}" \
 && date "+bench: tools ready @%s.%N" \
 && uv pip install --python /opt/venv/bin/python --index-url "${INDEX_URL}" \
      -r /tmp/build/requirements.in \
 && date "+bench: installed @%s.%N" && date "+bench: finished @%s.%N"
