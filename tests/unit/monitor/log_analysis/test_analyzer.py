"""The log analyzer is pure: lines + container state in, ranked findings out.

Fixture logs (tests/fixtures/logs) are realistic samples of nginx, postgres, a
Python web app, a Spring Boot app and a Go service; each has one expected top
finding. Signature, folding, state and bounds tests use small inline inputs.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailops.monitor.log_analysis import (
    AnalysisLimits,
    ContainerState,
    LogAnalysis,
    LogAnalyzer,
    analyze_lines,
)
from tests.helpers import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "logs"


def fixture(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def kinds(result: LogAnalysis) -> list[str | None]:
    return [f.kind for f in result.findings]


# --------------------------------------------------------------------------- fixture logs
def test_nginx_upstream_refused_is_the_top_finding() -> None:
    r = analyze_lines(fixture("nginx_error.log"))
    top = r.findings[0]
    assert top.kind == "connection_refused" and top.category == "signature" and top.likely_cause
    assert top.count == 7 and "172.18.0.5:8000" in (top.title or "")
    assert top.first_seen == "2024-05-14T09:12:15" and top.last_seen == "2024-05-14T09:14:05"
    assert top.evidence and "(111: Connection refused)" in top.evidence[0]
    assert "missing_file" in kinds(r)  # favicon/robots 404s: reported, ranked lower
    assert r.error_lines == 11 and r.warning_lines == 2
    assert r.window_start == "2024-05-14T09:12:01" and r.window_end == "2024-05-14T09:14:05"
    assert r.templates[0].count == 7 and "Connection refused" in (r.templates[0].template or "")
    assert "Most likely cause: Connection refused" in r.summary


def test_postgres_auth_failures_are_the_top_finding() -> None:
    r = analyze_lines(fixture("postgres.log"))
    top = r.findings[0]
    assert top.kind == "auth_failure" and top.count == 8
    assert "orders_app" in (top.title or "")
    assert "migration_error" in kinds(r)  # relation "order_items" does not exist
    assert r.templates[0].template == '[<NUM>] FATAL: password authentication failed for user "orders_app"'
    assert r.warning_lines == 1


def test_python_traceback_is_folded_into_one_finding() -> None:
    r = analyze_lines(fixture("python_traceback.log"))
    top = r.findings[0]
    assert top.kind == "python_exception" and top.category == "stack_trace"
    assert top.count == 3 and "KeyError: 'customer_id'" in (top.title or "")
    assert top.evidence and "at /app/orders/api.py:58 in submit_order" in top.evidence
    assert top.first_seen == "2024-05-14T10:01:11"  # the log record right before the trace
    # The chained exception is one finding too, naming both exceptions.
    chained = next(f for f in r.findings if "RuntimeError" in (f.title or ""))
    assert "root cause: LookupError: 8812" in (chained.title or "")
    # 3 + 1 folded traces, 4 error log records: not one error per trace line.
    assert r.error_lines == 8
    # The "Exception on /api/orders/submit" record belongs to its trace: no extra template finding.
    assert all(f.category != "template" for f in r.findings)


def test_a_trace_on_stderr_survives_interleaved_stdout_lines() -> None:
    """stdout and stderr reach the engine through separate pipes, so their lines interleave;
    a traceback on stderr is still one finding when stdout lines land in the middle of it."""
    stderr = [
        "2026-01-01T10:00:01.000000000Z ERROR unhandled error in flush loop",
        "Traceback (most recent call last):",
        '  File "/opt/workload.py", line 75, in errors',
        '    raise OSError(28, "No space left on device", "/data/cache/item-9.bin")',
        "OSError: [Errno 28] No space left on device: '/data/cache/item-9.bin'",
    ]
    stdout = [f"2026-01-01T10:00:0{i}.500000000Z INFO request {i} handled in 10 ms" for i in range(3)]
    analyzer = LogAnalyzer(None, None)
    order = [
        ("stderr", stderr[0]),
        ("stderr", stderr[1]),
        ("stdout", stdout[0]),
        ("stderr", stderr[2]),
        ("stdout", stdout[1]),
        ("stdout", stdout[2]),
        ("stderr", stderr[3]),
        ("stderr", stderr[4]),
    ]
    for stream, line in order:
        assert analyzer.feed(line, stream)
    r = analyzer.result()
    traces = [f for f in r.findings if f.category == "stack_trace"]
    assert len(traces) == 1 and traces[0].count == 1, r.findings
    assert "OSError" in (traces[0].title or "")
    disk = [f for f in r.findings if f.kind == "disk_full" and f.category == "signature"]
    assert all(f.count == 1 for f in disk), disk  # the trace's lines are not counted again


def test_an_unfinished_trace_on_another_stream_is_closed_at_the_end() -> None:
    analyzer = LogAnalyzer(None, None)
    analyzer.feed("Traceback (most recent call last):", "stderr")
    analyzer.feed('  File "/app/x.py", line 1, in <module>', "stderr")
    analyzer.feed("ValueError: bad input", "stderr")
    analyzer.feed("INFO shutting down", "stdout")
    r = analyzer.result()
    assert [f.category for f in r.findings if f.category == "stack_trace"] == ["stack_trace"]


def test_java_stack_root_cause_is_found() -> None:
    r = analyze_lines(fixture("java_stack.log"))
    top = r.findings[0]
    assert top.category == "stack_trace" and top.kind == "connection_refused"
    assert "BeanCreationException" in (top.title or "")
    assert "root cause: java.net.ConnectException: Connection refused" in (top.title or "")
    assert "billing-db:5432" in (top.title or "")
    assert top.evidence is not None
    assert any(e.startswith("at org.springframework.beans") for e in top.evidence)
    assert sum(1 for f in r.findings if f.category == "stack_trace") == 1


def test_go_panic_is_folded_and_not_mistaken_for_a_native_crash() -> None:
    r = analyze_lines(fixture("go_panic.log"))
    top = r.findings[0]
    assert top.kind == "go_panic" and top.category == "stack_trace"
    assert "nil pointer dereference" in (top.title or "")
    assert top.evidence and "at /src/internal/store/store.go:118" in top.evidence
    assert "segfault" not in kinds(r)
    assert "timeout" in kinds(r)
    assert r.window_start == "2024-05-14T12:00:00Z"  # from the JSON "time" field
    assert r.lines_analyzed == len(fixture("go_panic.log"))


# --------------------------------------------------------------------------- signatures
@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("ERROR dial tcp 10.1.2.3:6379: connect: connection refused", "connection_refused"),
        ("Error: connect ECONNREFUSED 127.0.0.1:5432", "connection_refused"),
        ('could not translate host name "db" to address: Name or service not known', "dns_failure"),
        ("dial tcp: lookup redis on 127.0.0.11:53: no such host", "dns_failure"),
        ("getaddrinfo ENOTFOUND api.internal", "dns_failure"),
        ("PermissionError: [Errno 13] Permission denied: '/data/out.txt'", "permission_denied"),
        ('[emerg] 1#1: open() "/var/log/nginx/error.log" failed (13: Permission denied)', "permission_denied"),
        ("OSError: [Errno 28] No space left on device", "disk_full"),
        ('PANIC:  could not write to file "pg_wal/xlogtemp.71": No space left on device', "disk_full"),
        ("[emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)", "port_in_use"),
        ("Error starting userland proxy: listen tcp4 0.0.0.0:8080: bind: address already in use", "port_in_use"),
        (
            "django.db.migrations.exceptions.InconsistentMigrationHistory: Migration admin.0001 applied",
            "migration_error",
        ),
        ('ERROR: Migration 20240501_add_orders failed: column "total" does not exist', "migration_error"),
        ('ERROR:  relation "users" does not exist at character 15', "migration_error"),
        ("java.lang.OutOfMemoryError: Java heap space", "oom_in_logs"),
        ("fatal error: runtime: out of memory", "oom_in_logs"),
        ("ssl.SSLCertVerificationError: certificate verify failed: certificate has expired", "tls_error"),
        ("ModuleNotFoundError: No module named 'psycopg2'", "missing_file"),
        ("exec /app/server: exec format error", "missing_file"),
        ("accept4: Too many open files; retrying in 1s", "too_many_open_files"),
        ("Segmentation fault (core dumped)", "segfault"),
        ('[emerg] 1#1: unknown directive "proxy_passs" in /etc/nginx/conf.d/default.conf:12', "config_error"),
        ("upstream timed out (110: Connection timed out) while reading response header", "timeout"),
        ('FATAL:  password authentication failed for user "app"', "auth_failure"),
    ],
)
def test_each_known_signature(line: str, kind: str) -> None:
    r = analyze_lines([line])
    assert kinds(r)[0] == kind, (line, kinds(r))
    assert r.findings[0].recommendation


def test_targets_are_named_in_titles() -> None:
    r = analyze_lines(["[emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)"])
    assert "80" in (r.findings[0].title or "")
    r = analyze_lines(["dial tcp: lookup redis on 127.0.0.11:53: no such host"])
    assert "redis" in (r.findings[0].title or "")


def test_plain_info_lines_give_no_findings() -> None:
    lines = [f"2024-05-01 10:00:{i % 60:02d} INFO request {i} served in {i % 17} ms (0 errors)" for i in range(300)]
    r = analyze_lines(lines)
    assert r.verdict == "no_problems" and r.findings == [] and r.error_lines == 0
    assert "No known failure signature" in r.summary


def test_unknown_recurring_errors_become_template_findings() -> None:
    lines = [f"2024-05-01T10:00:{i:02d}Z ERROR job {i} rejected by scheduler (quota {i * 3})" for i in range(20)]
    r = analyze_lines(lines)
    top = r.findings[0]
    assert top.category == "template" and top.count == 20
    assert "ERROR job <NUM> rejected by scheduler" in (top.title or "")
    assert top.first_seen == "2024-05-01T10:00:00Z" and top.last_seen == "2024-05-01T10:00:19Z"


def test_secrets_in_evidence_are_redacted() -> None:
    r = analyze_lines(["ERROR connect to db failed (password=hunter2secret): connection refused"])
    text = " ".join(r.findings[0].evidence or [])
    assert "hunter2secret" not in text and "[REDACTED]" in text


def test_docker_timestamp_prefix_is_used_and_stripped() -> None:
    r = analyze_lines(["2024-05-01T10:00:00.123456789Z ERROR could not connect: Connection refused"])
    assert r.findings[0].first_seen == "2024-05-01T10:00:00Z"
    assert r.findings[0].evidence == ["ERROR could not connect: Connection refused"]


def test_java_like_line_without_frames_is_a_plain_error() -> None:
    r = analyze_lines(["java.lang.IllegalStateException: cache not warmed", "INFO retrying"])
    assert r.error_lines == 1
    assert all(f.category != "stack_trace" for f in r.findings)


# --------------------------------------------------------------------------- state
def test_oom_kill_outranks_everything() -> None:
    state = ContainerState(name="api", status="exited", exit_code=137, oom_killed=True, memory_limit=64 * 1048576)
    r = analyze_lines(["ERROR could not connect: Connection refused"], state)
    top = r.findings[0]
    assert top.kind == "oom_killed" and top.likely_cause and "64 MiB" in (top.title or "")
    assert r.state is not None and r.state.oom_killed
    assert "crash_exit" not in kinds(r)  # 137 is explained by the OOM kill


def test_restart_loop_is_a_symptom_and_the_last_error_is_the_cause() -> None:
    state = ContainerState(name="worker", status="restarting", exit_code=1, restart_count=7, restart_policy="always")
    lines = ["INFO starting", "INFO connecting to db:5432"] * 3
    lines.append("ERROR could not connect to db:5432: Connection refused")
    r = analyze_lines(lines, state)
    assert kinds(r)[0] == "connection_refused" and r.findings[0].likely_cause
    loop = r.findings[kinds(r).index("restart_loop")]
    assert loop.severity == "critical" and "restarted 7 times" in (loop.title or "")
    assert "last exit 1 (application error)" in (loop.title or "")
    assert r.findings[0].evidence and any("before the container stopped" in e for e in r.findings[0].evidence)


def test_restart_loop_alone_is_top_but_not_called_a_cause() -> None:
    r = analyze_lines(["INFO starting"], ContainerState(name="w", status="running", restart_count=5))
    assert kinds(r) == ["restart_loop"]
    assert r.findings[0].likely_cause is False
    assert "unknown" in (r.findings[0].title or "")  # running again: exit code not kept


@pytest.mark.parametrize(
    ("code", "words", "severity"),
    [(127, "command not found", "error"), (139, "segmentation fault", "error"), (143, "SIGTERM", "info")],
)
def test_crash_exit_codes_are_explained(code: int, words: str, severity: str) -> None:
    r = analyze_lines([], ContainerState(name="x", status="exited", exit_code=code))
    f = r.findings[0]
    assert f.kind == "crash_exit" and words in (f.title or "") and f.severity == severity


def test_failing_health_check_shows_probe_output() -> None:
    state = ContainerState(
        name="web",
        status="running",
        health="unhealthy",
        health_failing_streak=4,
        health_log=("curl: (7) Failed to connect to localhost port 8080", "curl: (7) Failed to connect"),
    )
    r = analyze_lines(["INFO up"], state)
    f = r.findings[0]
    assert f.kind == "unhealthy" and "4 times" in (f.title or "")
    assert f.evidence and "port 8080" in f.evidence[0]


def test_engine_error_is_a_cause() -> None:
    state = ContainerState(
        name="x", status="created", error='OCI runtime create failed: exec: "/app/run": permission denied'
    )
    r = analyze_lines([], state)
    assert r.findings[0].kind == "engine_error" and r.findings[0].likely_cause


# --------------------------------------------------------------------------- bounds
def test_line_cap_stops_and_says_so() -> None:
    r = analyze_lines((f"ERROR e{i}" for i in range(1000)), limits=AnalysisLimits(max_lines=100))
    assert r.lines_analyzed == 100 and r.input_truncated
    assert any("line cap" in n for n in r.notes)


def test_byte_cap_stops_and_says_so() -> None:
    r = analyze_lines(("x" * 99 for _ in range(1000)), limits=AnalysisLimits(max_bytes=10_000))
    assert r.bytes_analyzed <= 10_000 and r.lines_analyzed == 100 and r.input_truncated


def test_deadline_returns_a_partial_result() -> None:
    analyzer = LogAnalyzer(None, AnalysisLimits(max_seconds=0.0), started=time.monotonic() - 1)
    fed = 0
    for i in range(5000):
        if not analyzer.feed(f"ERROR e{i}"):
            break
        fed += 1
    r = analyzer.result()
    assert fed < 5000 and r.partial and r.input_truncated


def test_templates_and_findings_are_bounded() -> None:
    # 60 different token counts: 60 different templates.
    lines = ("ERROR batch failed at step " + " ".join(["x"] * (i % 60)) for i in range(3000))
    r = analyze_lines(lines, limits=AnalysisLimits(max_templates=5, max_findings=2, max_clusters=50))
    assert len(r.templates) == 5 and len(r.findings) == 2
    assert r.truncated and r.total is not None and r.total > 2


def _big_log(megabytes: float) -> Iterator[str]:
    """A realistic mixed log, generated lazily (never held in memory)."""
    written = 0
    i = 0
    while written < megabytes * 1024 * 1024:
        kind = i % 10
        if kind == 9:
            line = f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z ERROR cache redis:6379 Connection refused (try {i})"
        elif kind == 7:
            line = f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z WARN slow query {i % 977} ms on orders"
        else:
            line = f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z INFO GET /api/items/{i} 200 {i % 89}ms"
        written += len(line) + 1
        i += 1
        yield line


def test_a_multi_megabyte_log_streams_in_bounded_time_and_memory() -> None:
    # One small run first: lazy imports and compiled patterns are allocated once per process,
    # and must not count against the run measured here (alone, that made this test fail).
    analyze_lines(_big_log(0.01), limits=AnalysisLimits(max_lines=1_000_000))
    tracemalloc.start()
    try:
        # CPU time, not wall time: a busy machine stretches the wall clock, not the work.
        started = time.process_time()
        r = analyze_lines(_big_log(1.5), limits=AnalysisLimits(max_lines=1_000_000))
        cpu_s = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.bytes_analyzed >= 1.5 * 1024 * 1024 and not r.input_truncated
    assert r.findings[0].kind == "connection_refused"
    assert r.findings[0].count == r.lines_analyzed // 10
    # Counters, a few templates and evidence lines: nowhere near the 1.5 MiB of input (measured: ~30 KB).
    assert peak < 512 * 1024, peak
    # Measured ~1.5 CPU-s (under tracemalloc); a quadratic slip would be far past this.
    assert cpu_s < 30, cpu_s


def test_analysis_of_no_lines() -> None:
    r = analyze_lines([])
    assert r.verdict == "no_problems" and r.lines_analyzed == 0
    assert any("no log lines" in n for n in r.notes)


def test_fixture_files_exist() -> None:
    names = {p.name for p in Path(FIXTURES).glob("*.log")}
    assert {"nginx_error.log", "postgres.log", "python_traceback.log", "java_stack.log", "go_panic.log"} <= names
