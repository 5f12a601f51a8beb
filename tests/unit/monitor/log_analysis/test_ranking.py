"""Ranking, verdict and summary (tailops.monitor.log_analysis.ranking) and state findings (.state)."""

from __future__ import annotations

from tailops.monitor.log_analysis.models import ContainerState, Finding, Severity
from tailops.monitor.log_analysis.ranking import rank, summary_text, verdict
from tailops.monitor.log_analysis.state import state_findings


def finding(kind: str, severity: Severity = "error") -> Finding:
    return Finding(kind=kind, severity=severity, title=kind)


def test_a_symptom_on_top_is_not_called_the_cause() -> None:
    ranked, total = rank([((3.0, 3, 0, 1), finding("restart_loop", "critical")), ((2.0, 1, 0, 9), finding("t"))], 20)
    assert total == 2 and [f.kind for f in ranked] == ["restart_loop", "t"] and not ranked[0].likely_cause


def test_a_cause_outranks_a_symptom_and_is_marked() -> None:
    ranked, total = rank(
        [((3.0, 3, 0, 1), finding("restart_loop", "critical")), ((5.0, 2, 1, 4), finding("connection_refused"))], 1
    )
    assert total == 2 and [f.kind for f in ranked] == ["connection_refused"] and ranked[0].likely_cause


def test_verdicts() -> None:
    assert verdict([finding("x", "critical")], 0) == "problems_found"
    assert verdict([finding("x", "warning")], 0) == "warnings_only"
    assert verdict([], 3) == "warnings_only"
    assert verdict([], 0) == "no_problems"


def test_state_findings_rank_the_oom_kill_as_a_cause_and_the_restart_loop_as_a_symptom() -> None:
    state = ContainerState(name="web", status="restarting", exit_code=137, oom_killed=True, restart_count=5)
    found = {f.kind: weight for f, weight in state_findings(state)}
    assert found == {"oom_killed": 6.0, "restart_loop": 3.0}


def test_a_clean_exit_in_a_loop_says_the_process_must_stay_in_the_foreground() -> None:
    state = ContainerState(name="job", status="restarting", exit_code=0, restart_count=4, restart_policy="always")
    [(loop, _)] = state_findings(state)
    assert loop.kind == "restart_loop" and "foreground" in (loop.recommendation or "")


def test_a_stop_by_sigterm_is_information_not_an_error() -> None:
    [(exit_, weight)] = state_findings(ContainerState(name="web", status="exited", exit_code=143))
    assert exit_.kind == "crash_exit" and exit_.severity == "info" and weight == 3.0


def test_the_summary_names_the_cause() -> None:
    cause = finding("oom_killed", "critical").model_copy(update={"likely_cause": True, "last_seen": "T"})
    text = summary_text(ContainerState(name="web", status="exited", exit_code=137, oom_killed=True), [cause], 10, 2, 1)
    assert (
        text.startswith("web is exited (exit code 137), OOM-killed.")
        and "Most likely cause: oom_killed, last at T" in text
    )
