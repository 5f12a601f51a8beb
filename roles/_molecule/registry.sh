#!/usr/bin/env bash
# registry.sh start DIR | stop DIR
# Run Debian's docker-registry as a plain process on a free loopback port (state in
# DIR), push tailops-molecule/webapp:1 to it and drop the registry-prefixed local tag
# so a pull really goes to the registry. DIR/port holds the port.
set -euo pipefail
cmd=$1 dir=$2
case "$cmd" in
start)
    mkdir -p "$dir/storage"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$dir/config.yml" <<CFG
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
CFG
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! > "$dir/pid"
    echo "$port" > "$dir/port"
    for _ in $(seq 1 50); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=1)" 2>/dev/null && break
        sleep 0.1
    done
    ref="127.0.0.1:$port/tailops-molecule/webapp:1"
    docker tag tailops-molecule/webapp:1 "$ref"
    docker push -q "$ref" >/dev/null
    docker image rm "$ref" >/dev/null
    ;;
stop)
    if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null || true; rm -f "$dir/pid"; fi
    if [ -f "$dir/port" ]; then
        docker image rm "127.0.0.1:$(cat "$dir/port")/tailops-molecule/webapp:1" >/dev/null 2>&1 || true
    fi
    ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
