#!/usr/bin/env bash
# Node 22 and the official MCP conformance suite, installed locally under .tools/
# (the system Node may be older than 22; `npm install node@22` brings a Node 22 binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS=.tools/node
CONFORMANCE_VERSION=0.1.16
mkdir -p "$TOOLS"
if [ -x "$TOOLS/node_modules/.bin/conformance" ] \
   && grep -q "\"version\": \"$CONFORMANCE_VERSION\"" "$TOOLS/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null; then
    echo "node tools: conformance $CONFORMANCE_VERSION present"
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "npm missing: run scripts/testbed/setup-host.sh" >&2; exit 1; }
cd "$TOOLS"
[ -f package.json ] || echo '{"name":"tailops-tools","private":true}' > package.json
npm install --no-audit --no-fund --loglevel=error node@22 "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >/dev/null
echo "node tools: $(node_modules/.bin/node --version), conformance $CONFORMANCE_VERSION installed"
