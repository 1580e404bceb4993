#!/usr/bin/env bash
# Build the pipeline's image with podman where no image registry can be reached (only Debian's and PyPI's
# package servers): a Debian base from debootstrap, Python from Debian in a venv, then the project's own
# containers/Dockerfile.cuda on top of it (PyPI's torch is the CUDA build; it runs on CPU too).
#
#   sudo bash scripts/build_podman_image.sh            # -> localhost/graphimpute:<version>-cuda
#   nextflow run . -profile test,podman --container graphimpute:<version>-cuda --outdir results
#
# Needs root, debootstrap and podman (Debian packages); ~8 GB of disk, most of it PyPI's torch and CUDA wheels.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/containers/podman.conf}"
VERSION="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$ROOT/pyproject.toml")"
BASE=localhost/graphimpute-python-base:3.11
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install $tool)" >&2; exit 1; }
done
if ! podman image exists localhost/debian-minbase:bookworm; then
    echo "debootstrap: Debian bookworm, minbase"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" \
        || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    tar -C "$WORK/rootfs" -c . | podman import - localhost/debian-minbase:bookworm
fi
if ! podman image exists "$BASE"; then
    cat >"$WORK/Containerfile" <<'BASE_IMAGE'
FROM localhost/debian-minbase:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && python3 -m venv /usr/local/py && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/py/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
BASE_IMAGE
    podman build --pull=never -f "$WORK/Containerfile" -t "$BASE" "$WORK"
fi
# this machine's certificate authorities go into the build's RUN steps (a TLS-inspecting proxy in front of
# PyPI needs them), not into the image
podman build --pull=never --build-arg BASE="$BASE" -v /etc/ssl/certs:/etc/ssl/certs:ro -f "$ROOT/containers/Dockerfile.cuda" \
    -t "localhost/graphimpute:${VERSION}-cuda" "$ROOT"
echo "built localhost/graphimpute:${VERSION}-cuda"
