#!/usr/bin/env bash
# Build the local images the role scenarios and integration tests use, cached by a
# content key (rebuilt only when this folder's recipes change). Never pulls.
#   tailops-target:systemd       base + systemd as PID 1 and a test unit tbsvc.service
#   tailops-molecule/webapp:1|2  python http server with a passing health check, VOLUME /data
#   tailops-molecule/webapp:bad  same, health check always fails
set -euo pipefail
cd "$(dirname "$0")"
docker image inspect tailops-target:base >/dev/null 2>&1 \
    || { echo "tailops-target:base missing: run scripts/testbed/build-images.sh" >&2; exit 1; }
key() { cat "$@" | sha256sum | cut -c1-12; }
build() {  # tag key dockerfile [build args...]
    local tag=$1 k=$2 file=$3; shift 3
    if ! docker image inspect "$tag-$k" >/dev/null 2>&1; then
        docker build -q -t "$tag-$k" -f "$file" "$@" . >/dev/null 2>/tmp/tailops-molecule-build.log \
            || { cat /tmp/tailops-molecule-build.log >&2; exit 1; }
    fi
    docker tag "$tag-$k" "$tag"
}
SYSTEMD_KEY=$(key Dockerfile.systemd)
build tailops-target:systemd "$SYSTEMD_KEY" Dockerfile.systemd
WEB_KEY=$(key webapp/Dockerfile webapp/Dockerfile.bad)
build tailops-molecule/webapp:1 "$WEB_KEY" webapp/Dockerfile --build-arg VERSION=1
build tailops-molecule/webapp:2 "$WEB_KEY" webapp/Dockerfile --build-arg VERSION=2
build tailops-molecule/webapp:bad "$WEB_KEY" webapp/Dockerfile.bad
