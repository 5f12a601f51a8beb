"""``systemd-analyze security`` of deploy/systemd/tailops.service, for the test and ``make bench``.

``--offline=true`` analyses the unit file itself (systemd >= 250), so no running systemd
and no installed tailops are needed; the unit's own ``ExecStart`` path does not matter.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import REPO_ROOT

__all__ = ["UNIT", "exposure"]

UNIT = REPO_ROOT / "deploy" / "systemd" / "tailops.service"
_OVERALL = re.compile(r"Overall exposure level for \S+: ([0-9.]+) (\S+)")


def exposure(unit: Path = UNIT) -> tuple[float, str]:
    """(exposure 0.0-10.0, rating such as "OK"), from systemd-analyze's own summary line."""
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = _OVERALL.search(proc.stdout + proc.stderr)
    if match is None:
        raise RuntimeError(f"systemd-analyze security gave no exposure (rc={proc.returncode}): {proc.stderr[-500:]}")
    return float(match.group(1)), match.group(2)
