#!/usr/bin/env bash
# Build the local target images without any registry (debootstrap + docker import),
# cached by a content key: each image is rebuilt only when its recipe changes.
#
#   tailops-target:base   Debian bookworm minbase + python3, python3-apt, sudo
#   tailops-target:ssh    base + openssh-server (proves the SSH connection path)
#
# The tag carrying the key (e.g. tailops-target:base-1a2b3c4d5e6f) is what makes the
# cache; the plain tags always point at the current build.
set -euo pipefail
cd "$(dirname "$0")"

key() { cat "$@" | sha256sum | cut -c1-12; }

BASE_KEY=$(key build-images.sh)
BASE_TAG="tailops-target:base-$BASE_KEY"
SSH_KEY=$(key build-images.sh Dockerfile.ssh)
SSH_TAG="tailops-target:ssh-$SSH_KEY"

mirror() {
    local m
    m=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 'Release: bookworm' 2>/dev/null \
        | grep -v security | head -n1 || true)
    if [ -z "$m" ]; then
        m=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/* /etc/apt/sources.list 2>/dev/null \
            | grep -v security | head -n1 | awk '{print ($1=="deb") ? $2 : $2}')
    fi
    echo "${m:-http://deb.debian.org/debian/}"
}

if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    MIRROR=$(mirror)
    ROOTFS=$(mktemp -d /tmp/tailops-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    echo "images: debootstrap bookworm from $MIRROR (about 40 s, once per recipe)"
    debootstrap --variant=minbase --include=python3,python3-apt,python3-debian,sudo \
        bookworm "$ROOTFS" "$MIRROR" >/tmp/tailops-debootstrap.log 2>&1 \
        || { tail -20 /tmp/tailops-debootstrap.log >&2; exit 1; }
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
    chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
    # apt shows versions in diffs ("pkg (1.0-1 => 1.1-1)") instead of bare names.
    echo 'APT::Get::Show-Versions "true";' > "$ROOTFS/etc/apt/apt.conf.d/90tailops-show-versions"
    rm -f "$ROOTFS"/var/cache/apt/archives/*.deb
    rm -rf "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
    rm -rf "$ROOTFS"
    trap - EXIT
fi
docker tag "$BASE_TAG" tailops-target:base

if ! docker image inspect "$SSH_TAG" >/dev/null 2>&1; then
    echo "images: building $SSH_TAG"
    docker build -q -t "$SSH_TAG" -f Dockerfile.ssh . >/dev/null 2>/tmp/tailops-ssh-build.log \
        || { cat /tmp/tailops-ssh-build.log >&2; exit 1; }
fi
docker tag "$SSH_TAG" tailops-target:ssh
echo "images: tailops-target:base ($BASE_KEY), tailops-target:ssh ($SSH_KEY) ready"
