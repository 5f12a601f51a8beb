"""Small helpers shared by test modules (import from here, not from conftest)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SESSION_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "tailops.test"
BASE_IMAGE = "tailops-target:base"
SSH_IMAGE = "tailops-target:ssh"


def unique_name(purpose: str) -> str:
    """A container/network name no other test (or test session) uses."""
    return f"tailops-test-{purpose}-{SESSION_ID}-{uuid.uuid4().hex[:6]}"


def testbed_cache() -> Path:
    """The machine-wide cache of built test-bed artifacts (outside the repo, survives sessions)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tailops-testbed"
