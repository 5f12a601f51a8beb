"""``GET /images/json`` rows → ImageSummary, on recorded engine answers."""

from __future__ import annotations

from tailops.monitor.containers.images import image_summary
from tests.unit.monitor.containers.recorded import recorded


def test_a_local_image_row() -> None:
    [row] = recorded("images")
    got = image_summary(row)
    assert got.id == row["Id"].removeprefix("sha256:")[:12]
    assert got.tags == ["tailops-target:base"] and got.digests == [] and got.dangling is False
    assert got.size == row["Size"] and got.created and got.created.endswith("Z")


def test_an_untagged_image_is_dangling() -> None:
    [row] = recorded("images")
    got = image_summary({**row, "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]})
    assert got.tags == [] and got.digests == [] and got.dangling is True
