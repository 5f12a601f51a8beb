"""docs/operations.md ("Install and deploy") names only commands and files that exist."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tailops.cli.main import app
from tests.helpers import REPO_ROOT

OPS = (REPO_ROOT / "docs" / "operations.md").read_text()


def code(text: str) -> str:
    """Fenced blocks and `inline code` only (prose may say "tailops has no reload")."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
    # `docker exec tailops tailops …`, `sudo -u tailops tailops …`: the first names a container or user.
    return re.sub(r"(exec|-u) tailops ", r"\1 NAME ", "\n".join(blocks + spans))


def test_every_tailops_command_in_the_install_docs_exists() -> None:
    runner = CliRunner()
    commands = sorted(set(re.findall(r"tailops ((?:[a-z]+ )?[a-z]+)(?= |$|\n|…)", code(OPS))))
    assert "init" in commands and "token mint" in commands
    for cmd in commands:
        words = cmd.split()
        if words[0] in {"serve", "init"} or len(words) == 1:
            words = words[:1]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"`tailops {cmd}` in docs/operations.md does not exist: {result.output}"


def test_every_deploy_file_named_exists_and_every_artifact_is_named() -> None:
    named = set(re.findall(r"`?(deploy/[A-Za-z0-9_./-]+[A-Za-z0-9_])`?", OPS))
    assert named
    for path in named:
        assert (REPO_ROOT / path).exists(), f"docs/operations.md names {path}, which does not exist"
    for artifact in ("deploy/container/Dockerfile", "deploy/compose/compose.yaml", "deploy/systemd/tailops.service"):
        assert artifact in OPS
    for name in ("serve.json", "service.hujson", "policy.hujson"):
        assert name in OPS and (REPO_ROOT / "deploy" / "tailscale" / name).is_file()
    assert "cannot be tested here" in OPS
