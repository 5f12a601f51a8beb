"""Small helpers shared by test modules (import from here, not from conftest)."""

from __future__ import annotations

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
