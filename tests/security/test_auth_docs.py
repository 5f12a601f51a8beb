"""docs/security.md tells the truth: the scopes table matches the registry, the
surfaces table matches the policy table, the commands it shows exist, and every
auth/audit config key is mentioned."""

from __future__ import annotations

import os
import re

from typer.testing import CliRunner

from tailops.cli.main import app
from tailops.config import AuditSettings, AuthSettings
from tailops.docs import render_scope_table, render_surface_table
from tailops.tools.registry import declared_specs
from tests.helpers import REPO_ROOT

DOC = REPO_ROOT / "docs" / "security.md"
BLOCK = re.compile(r"(<!-- scopes-table:start -->\n)(.*?)(<!-- scopes-table:end -->)", re.DOTALL)
SURFACES = re.compile(r"(<!-- surfaces-table:start -->\n)(.*?)(<!-- surfaces-table:end -->)", re.DOTALL)


def _check_block(block: re.Pattern[str], name: str, current: str) -> None:
    text = DOC.read_text()
    match = block.search(text)
    assert match, f"docs/security.md lacks the {name} markers"
    if os.environ.get("UPDATE_DOCS") == "1" and match.group(2) != current:
        DOC.write_text(block.sub(lambda m: m.group(1) + current + m.group(3), text))
        return
    assert match.group(2) == current, (
        f"docs/security.md {name} is stale: run `UPDATE_DOCS=1 pytest tests/security/test_auth_docs.py`"
    )


def test_scopes_table_matches_the_registry() -> None:
    _check_block(BLOCK, "scopes-table", render_scope_table(declared_specs()))


def test_surfaces_table_matches_the_policy_table() -> None:
    _check_block(SURFACES, "surfaces-table", render_surface_table())


def test_every_tool_is_in_the_table_under_its_scope() -> None:
    table = BLOCK.search(DOC.read_text())
    assert table
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.group(2).splitlines()[2:]}
    for spec in declared_specs():
        assert f"`{spec.name}`" in rows[spec.scope], f"{spec.name} ({spec.scope}) missing from the scopes table"


def test_commands_shown_exist() -> None:
    runner = CliRunner()
    for cmd in sorted(set(re.findall(r"tailops ((?:token|audit) [a-z][a-z-]*)", DOC.read_text()))):
        result = runner.invoke(app, [*cmd.split(), "--help"])
        assert result.exit_code == 0, f"`tailops {cmd}` in docs/security.md does not exist"


def test_every_auth_and_audit_key_is_documented() -> None:
    text = DOC.read_text()
    for section, model in (("auth", AuthSettings), ("audit", AuditSettings)):
        for key in model.model_fields:
            assert f"`{section}.{key}`" in text, f"{section}.{key} missing from docs/security.md"
