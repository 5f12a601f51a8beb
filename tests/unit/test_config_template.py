"""The config file ``tailops init`` writes is generated from the model and loads back exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from tailops.config import Settings, config_keys, load_config
from tailops.config_template import render_config


def uncomment_every_key(text: str) -> str:
    """Turn every commented ``# key: value`` line of a known key into an active line."""
    leaves = {key.rsplit(".", 1)[-1] for key, _default, _description in config_keys()}
    nested = {
        name
        for section in Settings.model_fields.values()
        if isinstance(section.annotation, type) and issubclass(section.annotation, BaseModel)
        for name, f in section.annotation.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }
    names = "|".join(sorted(leaves | nested))
    pattern = re.compile(rf"^(\s*)# ((?:{names}):(?: .*)?)$")
    return "\n".join(pattern.sub(r"\1\2", line) for line in text.splitlines()) + "\n"


def test_every_key_is_written_with_its_description(tmp_path: Path) -> None:
    text = render_config()
    for key, _default, description in config_keys():
        if "[]" in key:  # an item key of a list of sections: described as `list[].key (...)`
            item = key.split(".")[-2] + "." + key.split(".")[-1] if key.count(".") >= 2 else key
            assert re.search(rf"^\s*#\s+{re.escape(item)} \(", text, re.MULTILINE), f"{key} missing"
            continue
        leaf = key.rsplit(".", 1)[-1]
        assert re.search(rf"^\s*# {leaf}: ", text, re.MULTILINE), f"{key} missing"
        first_words = " ".join(description.split()[:4])
        assert first_words in " ".join(line.strip("# ").strip() for line in text.splitlines()), key
    for section, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            assert re.search(rf"^{section}:$", text, re.MULTILINE), section
        else:  # a top-level list of sections (nodes): commented, empty by default
            assert re.search(rf"^# {section}: \[\]$", text, re.MULTILINE), section


def test_the_commented_file_loads_as_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(render_config())
    assert load_config(path) == load_config(None)


def test_uncommenting_every_line_gives_exactly_the_defaults(tmp_path: Path) -> None:
    # Catches a rendered default that is not valid YAML or not the same value (durations,
    # lists with '*' or ':', null paths, nested blocks).
    data_dir = tmp_path / "data"
    path = tmp_path / "config.yaml"
    path.write_text(uncomment_every_key(render_config({"server": {"data_dir": str(data_dir)}})))
    active = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    # keys + section headers, all active now (item keys of lists of sections are documentation only)
    assert len(active) > len([k for k, _d, _desc in config_keys() if "[]" not in k])
    assert load_config(path) == load_config(None, server={"data_dir": data_dir})


def test_values_are_written_active(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(render_config({"server": {"data_dir": "/srv/tailops", "port": 9000}}))
    settings = load_config(path)
    assert settings.server.data_dir == Path("/srv/tailops") and settings.server.port == 9000


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(KeyError, match=r"server\.nope"):
        render_config({"server": {"nope": 1}})


def test_a_section_left_empty_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  # port: 1\nfiles:\n")
    assert load_config(path) == load_config(None)
