"""Stack-trace folding and description (tailops.monitor.log_analysis.traces)."""

from __future__ import annotations

from tailops.monitor.log_analysis.traces import JAVA_EXC, PY_START, Trace, continue_trace, describe_trace


def fold(lang: str, lines: list[str], limit: int = 200) -> tuple[Trace, list[str]]:
    tr = Trace(lang, [lines[0]], 1, None)  # type: ignore[arg-type]
    rest = lines[1:]
    for i, line in enumerate(rest):
        if not continue_trace(tr, line, limit):
            return tr, rest[i:]
    return tr, []


def test_a_chained_python_traceback_is_one_event_and_ends_at_the_next_record() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "/app/db.py", line 10, in connect',
        "    sock.connect(addr)",
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "",
        "The above exception was the direct cause of the following exception:",
        "",
        "Traceback (most recent call last):",
        '  File "/app/main.py", line 3, in <module>',
        "RuntimeError: database unavailable",
        "2024-05-01 10:00:00 INFO retrying",
    ]
    assert PY_START.search(lines[0])
    tr, left = fold("python", lines)
    assert left == ["2024-05-01 10:00:00 INFO retrying"]
    exc, message, location, related = describe_trace(tr)
    assert (exc, message, location) == ("RuntimeError", "database unavailable", "/app/main.py:3 in <module>")
    assert related[1].startswith("ConnectionRefusedError")  # the cause, for signature matching


def test_a_java_exception_with_causes() -> None:
    lines = [
        "org.postgresql.util.PSQLException: Connection to db:5432 refused.",
        "\tat org.postgresql.Driver.connect(Driver.java:10)",
        "Caused by: java.net.ConnectException: Connection refused",
        "\t... 12 more",
        "INFO next",
    ]
    assert JAVA_EXC.match(lines[0])
    tr, left = fold("java", lines)
    assert left == ["INFO next"]
    exc, message, location, related = describe_trace(tr)
    assert exc == "org.postgresql.util.PSQLException" and message == "Connection to db:5432 refused."
    assert location == "org.postgresql.Driver.connect(Driver.java:10)"
    assert related[-1] == "java.net.ConnectException: Connection refused"


def test_a_go_panic_points_at_the_first_frame_outside_the_runtime() -> None:
    lines = [
        "panic: runtime error: invalid memory address or nil pointer dereference",
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4]",
        "",
        "goroutine 1 [running]:",
        "runtime.panicmem()",
        "\t/usr/local/go/src/runtime/panic.go:260 +0x2c",
        "main.main()",
        "\t/app/main.go:12 +0x1d",
        "exit status 2",
    ]
    tr, left = fold("go", lines)
    assert left == []
    kind, message, location, related = describe_trace(tr)
    assert kind == "panic" and message.startswith("runtime error") and location == "/app/main.go:12"
    assert related == [lines[0]]  # not the [signal SIGSEGV line: no native crash


def test_a_trace_keeps_at_most_its_limit_of_lines() -> None:
    lines = ["Traceback (most recent call last):"] + [f'  File "/x.py", line {i}, in f' for i in range(50)]
    tr, _ = fold("python", lines, limit=10)
    assert len(tr.lines) == 10 and tr.dropped == 41
