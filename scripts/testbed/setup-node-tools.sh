#!/usr/bin/env bash
# Node 22 and the official MCP conformance suite, installed locally under .tools/node
# (the system Node may be older than 22; `npm install node@22` brings a Node 22 binary
# to node_modules/.bin/node, which tests put first on PATH: the suite's entry point is
# `#!/usr/bin/env node`). Idempotent: does nothing when the pinned versions are there.
# The install itself lives in the machine's test-bed cache (~/.cache/tailops-testbed/
# node-tools-<node>-<conformance>) and .tools/node is a link to it, so a fresh clone on
# the same machine links it instead of running npm again (~35 s).
# Used by `make test` (target conformance-tools) and tests/contract/test_conformance.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS=.tools/node
CONFORMANCE_VERSION=0.1.16
NODE_MAJOR=22
BIN="$TOOLS/node_modules/.bin"

installed() {
    [ -x "$BIN/conformance" ] && [ -x "$BIN/node" ] \
        && grep -q "\"version\": \"$CONFORMANCE_VERSION\"" \
            "$TOOLS/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null \
        && [ "$("$BIN/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" = "$NODE_MAJOR" ]
}

if installed; then
    echo "node tools: node $("$BIN/node" --version), conformance $CONFORMANCE_VERSION present"
    exit 0
fi
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/tailops-testbed/node-tools-$NODE_MAJOR-$CONFORMANCE_VERSION"
if [ ! -f "$CACHE/.complete" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm missing: run scripts/testbed/setup-host.sh" >&2; exit 1; }
    mkdir -p "$(dirname "$CACHE")"
    tmp=$(mktemp -d "$CACHE.tmp-XXXXXX")
    (
        cd "$tmp"
        echo '{"name":"tailops-tools","private":true}' > package.json
        npm install --no-audit --no-fund --loglevel=error \
            "node@$NODE_MAJOR" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >/dev/null
    ) || { rm -rf "$tmp"; exit 1; }
    touch "$tmp/.complete"
    # Another session may have finished first: keep theirs.
    mv -T "$tmp" "$CACHE" 2>/dev/null || rm -rf "$tmp"
fi
mkdir -p "$(dirname "$TOOLS")"
rm -rf "$TOOLS"
ln -s "$CACHE" "$TOOLS"
installed || { echo "node tools: install finished but Node $NODE_MAJOR / conformance $CONFORMANCE_VERSION not found in $BIN" >&2; exit 1; }
echo "node tools: node $("$BIN/node" --version), conformance $CONFORMANCE_VERSION installed"
