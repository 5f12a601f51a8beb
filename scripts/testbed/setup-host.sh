#!/usr/bin/env bash
# Install and start what the tests need on a fresh Debian machine (idempotent).
# - docker.io (+ a running dockerd), debootstrap, dpkg-dev, openssh-client
# - docker-compose (Debian's 1.29: validates and starts deploy/compose/compose.yaml in tests)
# - docker-registry (a real local registry on loopback for image pull tests; never started as a service)
# - Node >= 22 + the MCP conformance suite under .tools/ (npm registry)
# - chromium (the review page's browser tests drive it with Playwright)
# Runs as root (CI) or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /usr/bin/docker ] || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v dpkg-scanpackages >/dev/null 2>&1 || need_pkgs+=(dpkg-dev)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v docker-registry >/dev/null 2>&1 || need_pkgs+=(docker-registry)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "testbed: installing ${need_pkgs[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# dockerd: Debian's postinst cannot start it without systemd.
if ! docker info >/dev/null 2>&1; then
    echo "testbed: starting dockerd"
    $SUDO sh -c 'setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "testbed: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
echo "testbed: docker $(docker version --format '{{.Server.Version}}') running"
