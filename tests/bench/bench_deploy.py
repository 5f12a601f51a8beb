"""Deployment figures: the systemd unit's exposure (issue 14, target <= 2.0 "OK").

``systemd-analyze security --offline=true deploy/systemd/tailops.service``: 0.0 is fully
locked down, 10.0 fully exposed; systemd rates <= 2.0 "OK".
"""

from __future__ import annotations

from tests.bench.common import Row
from tests.deploy.unit_security import exposure

GROUP = "deploy"


def run() -> list[Row]:
    value, rating = exposure()
    return [
        Row(
            GROUP,
            "systemd-analyze security exposure of tailops.service",
            value,
            "of 10",
            target="<= 2.0 and OK",
            ok=value <= 2.0 and rating == "OK",
            note=rating,
        )
    ]
