"""README and CLI must tell the truth: generated sections are current, every
config key is documented, and the README's commands exist."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tailops.cli.main import app
from tailops.config import config_keys
from tailops.docs import generated_sections
from tests.helpers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_generated_sections_are_current() -> None:
    for name, body in generated_sections().items():
        match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", README, re.DOTALL)
        assert match, f"README.md lacks the {name} markers"
        assert match.group(1) == body, f"README.md {name} is stale: run scripts/update-readme.py"


def test_every_config_key_has_a_description_and_is_in_the_readme() -> None:
    for key, _default, description in config_keys():
        assert description, f"config key {key} has no description"
        assert f"`{key}`" in README, f"config key {key} missing from README"


def test_quick_start_is_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick and "make test" in quick
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("run", "test", "bench", "lint"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no {target} target"
    assert (REPO_ROOT / ".ci" / "run").read_text().strip().endswith("exec make test")


def test_cli_commands_named_in_the_readme_exist() -> None:
    runner = CliRunner()
    for cmd in sorted(set(re.findall(r"tailops ((?:[a-z]+ )?[a-z]+)(?= |$|\n|`)", README))):
        words = cmd.split()
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"`tailops {cmd}` in README does not exist: {result.output}"
