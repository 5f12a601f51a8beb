#!/bin/sh
# Container entrypoint: on the first `serve` with an empty data volume, create the token key
# pair there (the private key never leaves the volume; mint with
# `docker exec CONTAINER tailops token mint ...`). A mounted public key
# (TAILOPS_AUTH__PUBLIC_KEY) is used as is and nothing is generated. Then run tailops.
set -eu
if [ "${1:-}" = "serve" ] && [ -z "${TAILOPS_AUTH__PUBLIC_KEY:-}" ] \
    && [ ! -e /var/lib/tailops/keys/token.pub ]; then
    tailops token keygen >&2
fi
exec tailops "$@"
