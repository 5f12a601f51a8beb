"""Container env values are hidden in run events (tailops/changes/ansible/envmask.py), on event data.

The real run against the engine is in tests/integration/test_playbooks_containers.py;
here each shape community.docker uses is fed in and the value must be gone, the names
kept, everything else untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tailops.changes.ansible.artifacts import scrub
from tailops.changes.ansible.envmask import ENV_MASK, ENV_MASK_CHANGED, EnvMasker
from tailops.changes.ansible.events import EventParser
from tailops.changes.models import RunMode

SECRET = "opensesame-7f3a9c"


def _result_event(res: dict[str, Any], stdout: str = "") -> dict[str, Any]:
    return {
        "event": "runner_on_ok",
        "counter": 7,
        "stdout": stdout,
        "event_data": {"host": "localhost", "task": "Create and start the new container", "res": res},
    }


def test_docker_container_diff_inspect_data_and_arguments_are_masked_names_kept() -> None:
    res = {
        "changed": True,
        "diff": {
            "before": {"env": [f"UPSTREAM_HINT={SECRET}", "MODE=dev", "WEBAPP_VERSION=1"], "image": "a:1"},
            "after": {"env": [f"UPSTREAM_HINT={SECRET}", "MODE=dev", "WEBAPP_VERSION=2"], "image": "a:2"},
        },
        "container": {"Config": {"Env": [f"UPSTREAM_HINT={SECRET}", "MODE=dev"], "Image": "a:2"}},
        "invocation": {"module_args": {"env": {"UPSTREAM_HINT": SECRET, "MODE": "dev"}, "name": "web"}},
    }
    masked = EnvMasker().mask_event(_result_event(res))
    text = json.dumps(masked)
    assert SECRET not in text and "MODE=dev" not in text and '"MODE": "dev"' not in text
    diff = masked["event_data"]["res"]["diff"]
    assert diff["before"]["env"] == [f"UPSTREAM_HINT={ENV_MASK}", f"MODE={ENV_MASK}", f"WEBAPP_VERSION={ENV_MASK}"]
    assert diff["after"]["env"] == [
        f"UPSTREAM_HINT={ENV_MASK}",
        f"MODE={ENV_MASK}",
        f"WEBAPP_VERSION={ENV_MASK_CHANGED}",
    ]
    assert diff["after"]["image"] == "a:2" and masked["event_data"]["res"]["changed"] is True
    assert masked["event_data"]["res"]["invocation"]["module_args"] == {
        "env": {"UPSTREAM_HINT": ENV_MASK, "MODE": ENV_MASK},
        "name": "web",
    }
    # The parsed task result (what a plan stores) shows the change but not the value.
    parser = EventParser(RunMode.CHECK)
    parser.feed(masked)
    [task] = parser.host_results()["localhost"].tasks
    assert task.diff is not None and SECRET not in task.diff
    assert f"WEBAPP_VERSION={ENV_MASK_CHANGED}" in task.diff and '"image": "a:2"' in task.diff


def test_values_seen_once_are_hidden_in_every_later_string_of_the_run(tmp_path: Path) -> None:
    masker = EnvMasker()
    masker.mask_event(_result_event({"container": {"Config": {"Env": [f"UPSTREAM_HINT={SECRET}", "MODE=dev"]}}}))
    later = masker.mask_event(
        {
            "event": "runner_on_ok",
            "stdout": f'ok: [localhost] => {{"msg": "hint is {SECRET}", "x": "MODE=dev"}}\n"MODE": "dev"',
            "event_data": {"host": "localhost", "task": "Report", "res": {"msg": f"hint is {SECRET}"}},
        }
    )
    assert SECRET not in json.dumps(later) and "MODE=dev" not in json.dumps(later)
    assert later["event_data"]["res"]["msg"] == f"hint is {ENV_MASK}"
    assert f'"MODE": "{ENV_MASK}"' in later["stdout"]
    # A short value is only hidden in NAME=value form: "dev" elsewhere stays readable text.
    assert masker.mask_text("the dev team") == "the dev team"
    # The run's stdout artifact gets the same treatment.
    artifact = tmp_path / "artifacts" / "x"
    artifact.mkdir(parents=True)
    (artifact / "stdout").write_text(f"-    UPSTREAM_HINT={SECRET}\n+    MODE=dev\n")
    scrub(tmp_path, artifact, masker)
    assert (artifact / "stdout").read_text() == f"-    UPSTREAM_HINT={ENV_MASK}\n+    MODE={ENV_MASK}\n"


def test_events_without_env_pass_unchanged_and_odd_shapes_do_not_break_it() -> None:
    masker = EnvMasker()
    plain = _result_event({"changed": False, "msg": "ok", "diff": {"before": "a\n", "after": "b\n"}}, "ok: [h]")
    assert masker.mask_event(plain) == plain
    odd = _result_event({"env": True, "Env": None, "x": {"env": [1, 2]}, "deep": [[[{"env": {"A": None}}]]]})
    masked = masker.mask_event(odd)
    assert masked["event_data"]["res"]["env"] is True and masked["event_data"]["res"]["x"] == {"env": [1, 2]}
    assert masked["event_data"]["res"]["deep"] == [[[{"env": {"A": ENV_MASK}}]]]
