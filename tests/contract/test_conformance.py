"""The official MCP conformance suite against tailops' real HTTP server.

A server is started on a free loopback port with authentication off (the suite
sends no token) and DNS-rebinding protection on, with the suite's ``test_*``
fixtures registered on that instance only (tests/contract/conformance_fixtures.py).
The suite (``@modelcontextprotocol/conformance``, Node 22, installed under
``.tools/node`` by scripts/testbed/setup-node-tools.sh) runs as a subprocess
with a bounded timeout; its exit code is checked against the committed
baseline, and its saved results are read back so that a scenario that did not
run, or a check that did not succeed, fails the test too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailops.config import Settings
from tests.contract.conformance_fixtures import register_fixtures
from tests.helpers import REPO_ROOT
from tests.servers import http_server

NODE_BIN = REPO_ROOT / ".tools" / "node" / "node_modules" / ".bin"
CONFORMANCE = NODE_BIN / "conformance"
BASELINE = Path(__file__).with_name("conformance-baseline.yml")
SUITE_TIMEOUT = 240  # seconds; the whole active suite takes about 5 s here

# The active suite of @modelcontextprotocol/conformance 0.1.16 (`conformance list`
# minus the pending json-schema-2020-12 and server-sse-polling).
ACTIVE_SCENARIOS = frozenset(
    {
        "server-initialize",
        "logging-set-level",
        "ping",
        "completion-complete",
        "tools-list",
        "tools-call-simple-text",
        "tools-call-image",
        "tools-call-audio",
        "tools-call-embedded-resource",
        "tools-call-mixed-content",
        "tools-call-with-logging",
        "tools-call-error",
        "tools-call-with-progress",
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1034-defaults",
        "server-sse-multiple-streams",
        "elicitation-sep1330-enums",
        "resources-list",
        "resources-read-text",
        "resources-read-binary",
        "resources-templates-read",
        "resources-subscribe",
        "resources-unsubscribe",
        "prompts-list",
        "prompts-get-simple",
        "prompts-get-with-args",
        "prompts-get-embedded-resource",
        "prompts-get-with-image",
        "dns-rebinding-protection",
    }
)
# Pending upstream, but its fixture is ours to provide: run it as well.
EXTRA_SCENARIOS = ("json-schema-2020-12",)

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def _require_tools() -> None:
    missing = [p for p in (CONFORMANCE, NODE_BIN / "node") if not p.exists()]
    if missing:
        pytest.fail(
            f"MCP conformance tools missing ({', '.join(str(p) for p in missing)}): run `make test`, "
            "or scripts/testbed/setup-node-tools.sh, which installs Node 22 and the suite under .tools/node.",
            pytrace=False,
        )


def _baseline() -> list[str]:
    """The baseline's scenario names; every entry must carry its reason as a comment."""
    data = yaml.safe_load(BASELINE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("server"), list), "baseline needs a `server:` list"
    entries = [str(s) for s in data["server"]]
    for name in entries:
        line = next((x for x in BASELINE.read_text().splitlines() if x.strip().startswith(f"- {name}")), "")
        reason = line.partition("#")[2].strip()
        assert reason, f"baseline entry {name!r} has no `# reason` comment on its line"
    return entries


def _settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(
        # The suite sends no token; a test instance only (never a product default).
        # It also sends ~150 requests in a few seconds from one address: the
        # per-principal rate limit would answer 429 to a conforming client.
        auth={"unsafe_no_auth": True, "rate_limit_per_minute": 60_000, "rate_limit_burst": 10_000},
    )
    return settings


def _run_suite(url: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    cmd = [
        str(CONFORMANCE),
        "server",
        "--url",
        url,
        "--expected-failures",
        str(BASELINE),
        "-o",
        str(out),
        *args,
    ]
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"conformance suite did not finish within {SUITE_TIMEOUT} s: {cmd}\n{exc.stdout!r}")


def _results(out: Path) -> dict[str, list[dict[str, Any]]]:
    """scenario -> its checks, from the suite's `-o` directory."""
    found: dict[str, list[dict[str, Any]]] = {}
    for folder in sorted(out.iterdir()):
        m = _RESULT_DIR.match(folder.name)
        assert m, f"unexpected entry in the conformance output: {folder.name}"
        found[m.group("scenario")] = json.loads((folder / "checks.json").read_text())
    return found


def _failed_checks(checks: list[dict[str, Any]]) -> list[str]:
    # The suite counts FAILURE and WARNING against a scenario; INFO is a log line.
    return [
        f"{c['id']}: {c['status']} {c.get('errorMessage', '')}"
        for c in checks
        if c["status"] not in ("SUCCESS", "INFO")
    ]


def test_baseline_lists_only_reasoned_entries() -> None:
    entries = _baseline()
    unknown = set(entries) - ACTIVE_SCENARIOS - set(EXTRA_SCENARIOS)
    assert not unknown, f"baseline names scenarios the suite does not run: {sorted(unknown)}"


def test_conformance_suite_passes(make_settings: Any, tmp_path: Path) -> None:
    _require_tools()
    baseline = set(_baseline())
    out = tmp_path / "conformance"
    with http_server(_settings(make_settings), extra=register_fixtures) as srv:
        assert srv.url.startswith("http://127.0.0.1:"), "dns-rebinding-protection needs a loopback URL"
        started = time.monotonic()
        active = _run_suite(srv.url, out / "active", "--suite", "active")
        elapsed = time.monotonic() - started
        extra = [_run_suite(srv.url, out / name, "--scenario", name) for name in EXTRA_SCENARIOS]

    for proc in (active, *extra):
        assert proc.returncode == 0, (
            f"conformance failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    assert elapsed < SUITE_TIMEOUT

    results = _results(out / "active")
    for name in EXTRA_SCENARIOS:
        results.update(_results(out / name))
    assert set(results) == ACTIVE_SCENARIOS | set(EXTRA_SCENARIOS), (
        f"scenarios run differ from the pinned list: missing {sorted(ACTIVE_SCENARIOS - set(results))}, "
        f"new {sorted(set(results) - ACTIVE_SCENARIOS - set(EXTRA_SCENARIOS))}"
    )
    failures = {
        name: bad
        for name, checks in results.items()
        if name not in baseline and (bad := _failed_checks(checks) or ([] if checks else ["no checks ran"]))
    }
    assert not failures, f"scenarios with failed checks: {json.dumps(failures, indent=2)}"
