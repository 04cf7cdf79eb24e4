# An official-layout base, python:3.11-slim's: Debian 13 (trixie) with CPython compiled into
# /usr/local with a shared libpython, as docker-library/python's 3.11/slim-trixie does. Made
# offline by `make base-official` (imagetools/officialbase.py) from two mmdebstrap roots (a
# toolchain, and the runtime: minbase plus what python:3.11-slim installs and links) and the
# pristine CPython source of Debian's python3.11 source package. Not PGO/LTO-optimised, and
# without the official image's extra `pip install setuptools==65.5.1 'wheel<0.46'` (no network
# here): ensurepip's pip 22.3.1 and setuptools 65.5.0, no wheel.
FROM scratch AS toolchain
ADD build-root.tar /
# Stages that build, not services.
HEALTHCHECK NONE

FROM toolchain AS cpython
ARG PYTHON_VERSION=3.11.2
ARG SOURCE_DATE_EPOCH=0
ADD cpython.tar.gz /usr/src/
# Podman's OCI format ignores SHELL (its RUNs use /bin/sh): the scripts below hold under both,
# their one pipe being inside a command substitution.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /usr/src/Python-${PYTHON_VERSION}
# docker-library's configure, make and clean-up, without --enable-optimizations --with-lto.
RUN set -eux; \
    gnuArch="$(dpkg-architecture --query DEB_BUILD_GNU_TYPE)"; \
    ./configure --build="$gnuArch" --enable-loadable-sqlite-extensions \
      --enable-option-checking=fatal --enable-shared --with-ensurepip; \
    cflags="$(dpkg-buildflags --get CFLAGS)"; \
    ldflags="$(dpkg-buildflags --get LDFLAGS)"; ldflags="${ldflags:--Wl},--strip-all"; \
    make -j "$(nproc)" "EXTRA_CFLAGS=$cflags" "LDFLAGS=$ldflags"; \
    rm python; \
    make -j "$(nproc)" "EXTRA_CFLAGS=$cflags" "LDFLAGS=$ldflags,-rpath='\$\$ORIGIN/../lib'" python; \
    make install; \
    find /usr/local -depth \( \( -type d -a \( -name test -o -name tests -o -name idle_test \) \) \
      -o \( -type f -a \( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' \) \) \) \
      -exec rm -rf '{}' +; \
    for src in idle3 pip3 pydoc3 python3 python3-config; do \
      ln -svT "$src" "/usr/local/bin/$(echo "$src" | tr -d 3)"; \
    done; \
    find /usr/local -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" '{}' +

FROM scratch
ADD runtime-root.tar /
COPY --from=cpython /usr/local /usr/local
ARG PYTHON_VERSION=3.11.2
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHON_VERSION=${PYTHON_VERSION}
# ldconfig as docker-library's; then every module that links a Debian library must load here,
# in the runtime root (a library missing from OFFICIAL_PACKAGES fails the build, not a user).
RUN set -eux; \
    ldconfig; \
    find /usr/local -name '*.so*' -exec ldd '{}' + > /tmp/ldd.txt || true; \
    if grep 'not found' /tmp/ldd.txt; then exit 1; fi; \
    rm /tmp/ldd.txt; \
    python3 -B -c 'import bz2, ctypes, curses, dbm.gnu, dbm.ndbm, decimal, hashlib, lzma, \
      readline, sqlite3, ssl, uuid, zlib; print(ssl.OPENSSL_VERSION)'; \
    PYTHONDONTWRITEBYTECODE=1 pip --version
# A base image, not a service: the images built on it declare their own HEALTHCHECK.
HEALTHCHECK NONE
CMD ["python3"]
