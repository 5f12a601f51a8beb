"""Findings from the container's state: OOM kill, engine error, restart loop, crash exit, failing health check.

Why it exists: the engine often knows the cause better than the log does (the
kernel's OOM killer leaves no log line). These findings come from inspect alone,
each with a rank (6 = a definitive cause, 3 = a symptom such as a restart loop)
that the ranking uses to put the most likely cause first.

What it must never do: read log lines, or pass an engine error or health probe
output through without secret redaction.
"""

from __future__ import annotations

from tailops.monitor.log_analysis.evidence import clip
from tailops.monitor.log_analysis.models import ContainerState, Finding, Severity, StateSummary
from tailops.redact import redact_text

__all__ = ["EXIT_CODES", "state_findings", "state_summary"]

EXIT_CODES: dict[int, tuple[str, str]] = {
    1: (
        "application error",
        "The program exited with a general error; the log lines before the exit say why.",
    ),
    2: ("misuse / bad arguments", "Check the command line and configuration the program starts with."),
    125: (
        "the container could not be created/started",
        "Read State.Error (inspect_container) for the reason.",
    ),
    126: (
        "command cannot be executed",
        "The entrypoint is not executable (permissions, wrong architecture); fix the image.",
    ),
    127: (
        "command not found",
        "CMD/ENTRYPOINT names a program missing from the image or PATH; fix the image.",
    ),
    130: ("interrupted (SIGINT)", "Someone or something interrupted the process."),
    134: (
        "aborted (SIGABRT)",
        "The process aborted itself (failed assertion, fatal runtime error); see the log.",
    ),
    137: (
        "killed (SIGKILL)",
        "Killed by SIGKILL: the kernel OOM killer (see oom_killed), `docker kill`, or a stop that timed out.",
    ),
    139: (
        "segmentation fault (SIGSEGV)",
        "A crash in native code; check the image version and native libraries.",
    ),
    143: ("terminated (SIGTERM)", "A normal stop (`docker stop`); no fault unless nobody stopped it."),
}


def state_findings(state: ContainerState | None) -> list[tuple[Finding, float]]:
    """State-derived findings with their rank (6 = definitive cause, 3 = symptom)."""
    if state is None:
        return []
    out: list[tuple[Finding, float]] = []
    limit = f"{state.memory_limit / 1048576:.0f} MiB" if state.memory_limit else "no limit"
    if state.oom_killed:
        out.append(
            (
                Finding(
                    kind="oom_killed",
                    category="state",
                    severity="critical",
                    title=f"Killed by the kernel OOM killer (memory limit: {limit})",
                    count=1,
                    first_seen=state.finished_at,
                    last_seen=state.finished_at,
                    evidence=[
                        "State.OOMKilled = true",
                        f"exit code {state.exit_code}" if state.exit_code is not None else "exit code unknown",
                        f"memory limit {limit}",
                    ],
                    recommendation="The container used all the memory it may use and was killed. Check its "
                    "memory use over time (get_container_stats) and either raise the memory limit through a "
                    "reviewed "
                    "change (container update playbook) or reduce the workload's memory (heap size, workers, "
                    "caches); look for a leak if use grows steadily.",
                    likely_cause=False,
                ),
                6.0,
            )
        )
    if state.error:
        out.append(
            (
                Finding(
                    kind="engine_error",
                    category="state",
                    severity="critical",
                    title="The engine could not run the container",
                    count=1,
                    evidence=[clip(redact_text(state.error), 400)],
                    recommendation="The runtime refused to start the process (bad entrypoint, missing mount "
                    "source, device or permission). Fix the reason named in the evidence, then recreate the "
                    "container through a reviewed change.",
                    likely_cause=False,
                ),
                6.0,
            )
        )
    looping = state.status == "restarting" or state.restart_count >= 3
    if looping:
        # While it runs again, the engine has reset ExitCode to 0: the last exit code is unknown then.
        code = state.exit_code if state.status != "running" else None
        if code is None:
            meaning = "running again now; the exit code of the previous run is not kept"
        elif code == 0:
            meaning = "exit code 0: the main process ends by itself"
        else:
            meaning = EXIT_CODES.get(code, (f"exit code {code}", ""))[0]
        advice = (
            "The main process keeps exiting and the restart policy starts it again. Fix what makes it exit: "
            "the likely cause is the finding ranked first; until then each restart repeats the failure."
        )
        if code == 0:
            advice = (
                "The main process exits successfully and is restarted: it must run in the foreground "
                "(no daemonizing, no one-shot command with restart=always)."
            )
        out.append(
            (
                Finding(
                    kind="restart_loop",
                    category="state",
                    severity="critical",
                    title=f"Restart loop: restarted {state.restart_count} times, "
                    f"last exit {'unknown' if code is None else code} ({meaning})",
                    count=max(1, state.restart_count),
                    first_seen=state.started_at,
                    last_seen=state.finished_at,
                    evidence=[
                        f"status {state.status}",
                        f"restart count {state.restart_count}",
                        f"restart policy {state.restart_policy or 'none'}",
                        f"last exit code {code}",
                    ],
                    recommendation=advice,
                    likely_cause=False,
                ),
                3.0,
            )
        )
    elif state.status in ("exited", "dead") and state.exit_code not in (None, 0) and not state.oom_killed:
        code = state.exit_code
        assert code is not None
        meaning, advice = EXIT_CODES.get(code, (f"exit code {code}", "Read the last log lines before the exit."))
        severity: Severity = "info" if code == 143 else "error"
        out.append(
            (
                Finding(
                    kind="crash_exit",
                    category="state",
                    severity=severity,
                    title=f"Exited with code {code} ({meaning})",
                    count=1,
                    first_seen=state.finished_at,
                    last_seen=state.finished_at,
                    evidence=[
                        f"status {state.status}",
                        f"exit code {code}",
                        f"finished at {state.finished_at}",
                    ],
                    recommendation=advice,
                    likely_cause=False,
                ),
                3.0 if code != 137 else 3.5,
            )
        )
    if state.health == "unhealthy":
        probes = [clip(redact_text(p.strip()), 300) for p in state.health_log[-3:] if p.strip()]
        out.append(
            (
                Finding(
                    kind="unhealthy",
                    category="state",
                    severity="error",
                    title=f"Health check failing ({state.health_failing_streak} times in a row)",
                    count=max(1, state.health_failing_streak),
                    evidence=probes or ["the health check produced no output"],
                    recommendation="The HEALTHCHECK command fails. Read its output (evidence), check the app "
                    "listens on the port/path the check uses, and whether the check's timeout is too short.",
                    likely_cause=False,
                ),
                3.0,
            )
        )
    return out


def state_summary(state: ContainerState | None) -> StateSummary | None:
    if state is None:
        return None
    return StateSummary(
        status=state.status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        restart_count=state.restart_count,
        health=state.health,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )
