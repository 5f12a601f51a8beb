#!/usr/bin/env bash
# The test phase of `make test`: pytest and every role's molecule scenario, side by side.
#
# Why side by side: pytest is one process (about one core busy, less while it waits for
# Docker and Ansible), and molecule is a chain of ansible-playbook runs against its own
# containers (tailops-molecule-*, its own loopback registry), sharing no container, port,
# image tag or data dir with pytest's (tailops-test-*, per-session labels, tmp dirs). On a
# 2-core machine the second core would otherwise idle through the pytest run, so molecule
# costs little wall time beside it instead of its full run after it.
# TAILOPS_TEST_SERIAL=1 runs them one after the other (the old way, e.g. to time each).
#
# pytest itself runs its test modules on TAILOPS_TEST_WORKERS pytest-xdist workers (default
# 2, `--dist loadfile`: a module stays on one worker, so module fixtures are set up once).
# Why: the integration modules mostly wait (on hosts, SSH, nodes, ansible start-up), so two
# of them overlap well even beside molecule. Each worker is its own session: its own
# SESSION_ID label on the containers it starts, its own tmp dirs; the machine-wide caches
# (apt repo, images, wheelhouse, node tools) are built into a temp sibling and renamed, so
# two workers never see half of one. TAILOPS_TEST_WORKERS=0 runs pytest in one process.
#
#   scripts/run-tests.sh [PYTEST ARGS...]
#
# Exit status: non-zero if pytest or any molecule scenario failed. Molecule's per-role
# lines are printed after pytest's report (logs: $MOLECULE_LOG_DIR, default /tmp/tailops-molecule).
set -uo pipefail
cd "$(dirname "$0")/.."
WORKERS=${TAILOPS_TEST_WORKERS:-2}
PYTEST=(pytest tests --ignore=tests/bench -n "$WORKERS" --dist loadfile)
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"
export MOLECULE_LOG_DIR=${MOLECULE_LOG_DIR:-/tmp/tailops-molecule}
mkdir -p "$MOLECULE_LOG_DIR"

if [ "${TAILOPS_TEST_SERIAL:-0}" = 1 ]; then
    "${PYTEST[@]}" "$@"
    prc=$?
    scripts/molecule-all.sh
    mrc=$?
    [ "$prc" = 0 ] && [ "$mrc" = 0 ]
    exit
fi

summary="$MOLECULE_LOG_DIR/summary.txt"
# Its own process group, so an interrupted run stops molecule too (a background job of a
# non-interactive shell ignores SIGINT).
setsid scripts/molecule-all.sh >"$summary" 2>&1 </dev/null &
molecule_pid=$!
stop_molecule() { kill -- "-$molecule_pid" 2>/dev/null; }
trap 'stop_molecule; exit 130' INT TERM

echo "molecule: all roles' scenarios run beside pytest (summary after pytest's report)"
"${PYTEST[@]}" "$@"
prc=$?
if kill -0 "$molecule_pid" 2>/dev/null; then
    echo "waiting for molecule ..."
fi
wait "$molecule_pid"
mrc=$?
trap - INT TERM
cat "$summary"
[ "$prc" = 0 ] && [ "$mrc" = 0 ]
