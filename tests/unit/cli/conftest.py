"""Fixtures every CLI test module shares: a config file with a private data dir, and its settings.

A module that needs more in its config (a catalog copy, a token TTL) overrides ``cfg``;
``settings`` then loads that one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tailops.config import Settings, load_config


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"server": {"data_dir": str(tmp_path / "data")}}))
    return path


@pytest.fixture
def settings(cfg: Path) -> Settings:
    return load_config(cfg)
