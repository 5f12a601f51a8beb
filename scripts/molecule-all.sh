#!/usr/bin/env bash
# Run every role's molecule scenario (`molecule test`): one pass/fail line per role,
# total time at the end, non-zero exit if any role failed. Offline: the scenarios use
# only local images (scripts/testbed/build-images.sh, roles/_molecule/build-images.sh),
# the offline apt repositories and a loopback registry.
#
#   scripts/molecule-all.sh                 all roles
#   scripts/molecule-all.sh ROLE [ROLE...]  only these
#
# Logs: $MOLECULE_LOG_DIR (default /tmp/tailops-molecule)/<role>.log
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"   # molecule needs ansible-config & co. first on PATH
LOG_DIR=${MOLECULE_LOG_DIR:-/tmp/tailops-molecule}
mkdir -p "$LOG_DIR"

if [ $# -gt 0 ]; then
    roles=("$@")
else
    roles=()
    for dir in roles/*/molecule/default; do
        role=${dir#roles/}
        roles+=("${role%%/*}")
    done
fi

"$ROOT/roles/_molecule/build-images.sh" || { echo "molecule: building the local images failed" >&2; exit 1; }

failed=()
start=$(date +%s)
for role in "${roles[@]}"; do
    t0=$(date +%s)
    if (cd "roles/$role" && molecule test) >"$LOG_DIR/$role.log" 2>&1; then
        printf 'molecule %-18s pass  %4ss\n' "$role" "$(( $(date +%s) - t0 ))"
    else
        printf 'molecule %-18s FAIL  %4ss  (log: %s)\n' "$role" "$(( $(date +%s) - t0 ))" "$LOG_DIR/$role.log"
        failed+=("$role")
    fi
done
total=$(( $(date +%s) - start ))
if [ ${#failed[@]} -gt 0 ]; then
    echo "molecule: ${#failed[@]} of ${#roles[@]} roles failed (${failed[*]}) in ${total}s"
    exit 1
fi
echo "molecule: all ${#roles[@]} roles passed in ${total}s"
