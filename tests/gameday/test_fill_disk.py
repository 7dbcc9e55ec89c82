"""Filling a disk for a game day: a file of the asked size in a scratch directory on the disk the
host check watches, always removed by the undo; more than the scenario allows is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.config.models import Inventory
from opsplane.gameday.datastores import FaultRefused
from opsplane.gameday.faults import Where, open_fault


def _inventory(watched: Path, **scenario: object) -> Inventory:
    return Inventory.model_validate({
        "platform": {"name": "shop"},
        "hosts": {"box": {"checks": [{"type": "host", "path": str(watched)}]}},
        "gamedays": {"scenarios": {"fill": {"kind": "fill-disk", "target": "box", **scenario}}}})


def test_the_file_is_written_on_the_watched_disk_and_removed_by_the_undo(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, directory=str(tmp_path), size="3MiB")
    fault = open_fault(inventory.gamedays.scenarios["fill"], Where(inventory, tmp_path, {}, "cli:ana", 7))
    fault.check()
    record = fault.inject()
    scratch = tmp_path / ".opsplane-gameday-7"
    assert (scratch / "fill").stat().st_size == 3 * 2**20
    assert "removed" in fault.undo(record)
    assert not scratch.exists()


def test_more_than_max_size_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, size="2GiB", max_size="1GiB")
    fault = open_fault(inventory.gamedays.scenarios["fill"], Where(inventory, tmp_path, {}, "cli:ana", 8))
    with pytest.raises(FaultRefused, match="more than max_size"):
        fault.check()
    assert list(tmp_path.iterdir()) == []


def test_the_undo_removes_only_a_game_days_scratch_directory(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, size="1MiB")
    fault = open_fault(inventory.gamedays.scenarios["fill"], Where(inventory, tmp_path, {}, "cli:ana", 9))
    (tmp_path / "precious").mkdir()
    with pytest.raises(Exception, match="not a game day's scratch directory"):
        fault.undo({"scratch": str(tmp_path / "precious")})
    assert (tmp_path / "precious").exists()
