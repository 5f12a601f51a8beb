"""docs/operations.md must tell the truth: every metric the server exports is in its
monitoring table (and no name there is made up), every auth failure reason it names
exists, and every ``tailops`` command it shows exists."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tailops.auth import tokens
from tailops.cli.main import app
from tailops.metrics import Metrics
from tests.helpers import REPO_ROOT

DOC = (REPO_ROOT / "docs" / "operations.md").read_text()


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        kind = family.type
        names.add(f"{family.name}_total" if kind == "counter" else family.name)
    return names


def test_every_metric_is_documented_and_no_other() -> None:
    exported = exported_names()
    documented = set(re.findall(r"`(tailops_[a-z_]+)`", DOC))
    assert exported - documented == set(), f"undocumented metrics: {exported - documented}"
    assert documented - exported == set(), f"docs name metrics that do not exist: {documented - exported}"


def test_auth_failure_reasons_named_in_the_docs_exist() -> None:
    row = next(line for line in DOC.splitlines() if line.startswith("| `tailops_auth_failures_total`"))
    named = set(re.findall(r"\b([a-z_]+)\b", row.split("|")[2].split("(", 1)[1].split(")", 1)[0]))
    known = set(tokens._REASONS.values()) | {"missing"}
    assert named - {"reason"} <= known, named - known


def test_commands_in_the_docs_exist() -> None:
    runner = CliRunner()
    # The "Day two" part (tests/unit/test_install_docs.py checks the install part's code).
    day_two = DOC.split("## Day two", 1)[1]
    commands = sorted(set(re.findall(r"tailops ((?:[a-z][a-z-]* )?[a-z][a-z-]*)(?= |$|\n|`)", day_two)))
    assert "backup" in commands and "token retire-key" in commands
    for cmd in commands:
        result = runner.invoke(app, [*cmd.split(), "--help"])
        assert result.exit_code == 0, f"`tailops {cmd}` in docs/operations.md does not exist: {result.output}"
