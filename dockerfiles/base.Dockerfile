# The local base: Debian bookworm's Python 3.11 from a root file system that imagetools/baseimage.py
# makes with mmdebstrap under SOURCE_DATE_EPOCH (used when BASE_IMAGE cannot be pulled).
# Built rather than `import`ed so that Podman's --timestamp gives the same image ID twice.
FROM scratch
ADD rootfs.tar /
ENV LANG=C.UTF-8
# A base image, not a service: the images built on it declare their own HEALTHCHECK.
HEALTHCHECK NONE
CMD ["python3"]
