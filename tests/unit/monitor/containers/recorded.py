"""Recorded engine answers (tests/fixtures/docker/, written by its record.py) for the parser tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.helpers import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "docker"


def recorded(name: str) -> Any:
    """The JSON the engine answered, as the recorder stored it."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def recorded_bytes(name: str, key: str) -> bytes:
    """A recorded byte stream (stored base64)."""
    return base64.b64decode(recorded(name)[key])
