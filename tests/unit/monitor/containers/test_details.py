"""``GET /containers/{id}/json`` → ContainerDetails / ContainerState, on recorded engine answers."""

from __future__ import annotations

from tailops.monitor.containers.details import container_state, details_from_inspect
from tailops.redact import REDACTED
from tests.unit.monitor.containers.recorded import recorded


def test_inspect_of_a_running_container() -> None:
    raw = recorded("inspect_running")
    got = details_from_inspect(raw)
    assert got.name == raw["Name"].lstrip("/") and got.id == raw["Id"]
    assert got.state.status == "running" and got.state.running and got.state.pid
    assert got.state.health is not None and got.state.health.status == "healthy"
    assert got.state.health.last_exit_codes and set(got.state.health.last_exit_codes) == {0}
    assert got.restart_policy.name == "on-failure" and got.restart_policy.maximum_retry_count == 2
    assert got.resources.memory_limit == 256 * 1024 * 1024
    assert got.config.cmd == ["sleep", "infinity"] and got.config.healthcheck == ["CMD", "true"]
    assert [n.network for n in got.networks] == list(raw["NetworkSettings"]["Networks"])
    assert got.networks[0].ip_address
    assert any(p.startswith("127.0.0.1:") and p.endswith("->8080/tcp") for p in got.ports)


def test_environment_values_are_hidden_unless_revealed() -> None:
    raw = recorded("inspect_running")
    hidden = details_from_inspect(raw)
    assert hidden.env_redacted and {e.name: e.value for e in hidden.env} == {
        "APP_MODE": REDACTED,
        "DB_PASSWORD": REDACTED,
    }
    assert "hunter2secret" not in hidden.model_dump_json()
    shown = details_from_inspect(raw, reveal_env=True)
    assert not shown.env_redacted and {e.name: e.value for e in shown.env}["DB_PASSWORD"] == "hunter2secret"


def test_inspect_of_an_exited_container() -> None:
    got = details_from_inspect(recorded("inspect_exited"))
    assert got.state.status == "exited" and not got.state.running and got.state.exit_code == 3
    assert got.state.pid is None and got.state.finished_at and got.state.health is None


def test_the_analysis_view_of_the_state() -> None:
    state = container_state(recorded("inspect_exited"))
    assert state.status == "exited" and state.exit_code == 3 and not state.oom_killed
    assert state.name.startswith("tailops-test-fixture-exited-")
    running = container_state(recorded("inspect_running"))
    assert running.health == "healthy" and running.memory_limit == 256 * 1024 * 1024
    assert running.restart_policy == "on-failure"
