#!/usr/bin/env bash
# Build tailops-base:trixie without any registry (debootstrap + docker import), cached by
# a content key like build-images.sh. It is the base image deploy/container/Dockerfile is
# built FROM in the tests (--build-arg BASE=tailops-base:trixie): tailops needs
# Python >= 3.12 and bookworm has 3.11, trixie 3.13. Outside this test bed use
# debian:trixie-slim (the Dockerfile's default BASE).
set -euo pipefail
cd "$(dirname "$0")"

KEY=$(sha256sum build-trixie-base.sh | cut -c1-12)
TAG="tailops-base:trixie-$KEY"
if docker image inspect "$TAG" >/dev/null 2>&1; then
    docker tag "$TAG" tailops-base:trixie
    exit 0
fi
MIRROR=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null \
    | grep -v security | grep -E '/debian/?$' | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian/}
ROOTFS=$(mktemp -d /tmp/tailops-trixie.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "images: debootstrap trixie from $MIRROR (about 50 s, once per recipe)"
debootstrap --variant=minbase --include=python3,ca-certificates trixie "$ROOTFS" "$MIRROR" \
    >/tmp/tailops-debootstrap-trixie.log 2>&1 || { tail -20 /tmp/tailops-debootstrap-trixie.log >&2; exit 1; }
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
rm -f "$ROOTFS"/var/cache/apt/archives/*.deb
rm -rf "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
docker tag "$TAG" tailops-base:trixie
echo "images: tailops-base:trixie ($KEY) ready"
