"""Releases as values: the spec a release and a proxy make, track names, how an instance of a
track reads, what `serve` makes of a track's notices, and `ps` with its VERSION column."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from opsplane.config.loader import loads
from opsplane.drivers.runtime import InstanceStatus, RuntimeNotice
from opsplane.drivers.runtime.releases import ReleaseBook, ReleaseFileError, split_group, track_name
from opsplane.drivers.runtime.spec import ServiceSpec, substitute
from opsplane.errors import UsageError
from opsplane.runtime.liveness import ServiceLiveness
from opsplane.runtime.report import ps_table

INVENTORY = (
    "platform: {name: shop}\n"
    "proxies:\n  edge: {engine: haproxy, managed: false, port: 8080}\n"
    "services:\n"
    "  catalog:\n    port: 8101\n    proxy: edge\n"
    "    run: {argv: [app, --release, '{version}'], version: v1, env: {RELEASE: '{version}'}}\n"
    "  worker:\n    run: {argv: [work]}\n"
)
T0 = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def spec_of(name: str, tmp_path: Path, version: str | None = None) -> ServiceSpec:
    inventory = loads(INVENTORY, "x.yaml")
    return ServiceSpec.from_component(name, inventory.component(name), base_dir=tmp_path, version=version)


def test_the_spec_runs_the_inventory_release_unless_given_another(tmp_path: Path) -> None:
    assert spec_of("catalog", tmp_path).version == "v1"
    assert spec_of("catalog", tmp_path, "v2").version == "v2"
    assert spec_of("worker", tmp_path).version is None
    assert not spec_of("catalog", tmp_path).same_program(spec_of("catalog", tmp_path, "v2"))


def test_a_service_behind_a_proxy_has_no_fixed_port_but_every_instance_gets_one(tmp_path: Path) -> None:
    catalog = spec_of("catalog", tmp_path)

    assert (catalog.port, catalog.wants_port) == (None, True)


def test_a_track_is_the_same_program_under_its_own_name_on_free_ports(tmp_path: Path) -> None:
    track = spec_of("catalog", tmp_path).track("v2", 3)

    assert (track.name, track.service, track.version, track.port, track.instances) == (
        "catalog@v2", "catalog", "v2", None, 3)
    assert track.argv == spec_of("catalog", tmp_path).argv
    assert ServiceSpec.from_dict(track.as_dict()) == track


def test_a_spec_recorded_before_releases_existed_still_reads(tmp_path: Path) -> None:
    recorded = spec_of("worker", tmp_path).as_dict()
    del recorded["version"]

    assert ServiceSpec.from_dict(recorded).version is None


def test_the_version_placeholder_is_replaced_and_an_unknown_one_is_empty() -> None:
    text = "--release={version} --name={service}-{instance}"

    assert substitute(text, port=None, host="h", instance=1, service="catalog", version="v2") == \
        "--release=v2 --name=catalog-1"
    assert substitute(text, port=None, host="h", instance=0, service="catalog") == \
        "--release= --name=catalog-0"


def test_track_names_are_made_and_taken_apart() -> None:
    assert track_name("catalog", "2026.01.06-1") == "catalog@2026.01.06-1"
    assert split_group("catalog@v2") == ("catalog", "v2")
    assert split_group("catalog") == ("catalog", None)
    for bad in ("", "v 2", "../v2", "-v2", "v2@x", "x" * 64):
        with pytest.raises(UsageError, match="not a release name"):
            track_name("catalog", bad)


def test_an_instance_of_a_track_names_its_service_and_release() -> None:
    own = InstanceStatus("catalog", 0, 10, 8101, "running", T0, 0, version="v2")
    track = InstanceStatus("catalog@v2", 1, 11, 9001, "running", T0, 0, version="v2")

    assert (own.base_service, own.release, own.name) == ("catalog", None, "catalog.0")
    assert (track.base_service, track.release, track.name) == ("catalog", "v2", "catalog@v2.1")
    assert InstanceStatus.from_dict(track.as_dict()) == track
    assert track.as_dict()["version"] == "v2"


def test_the_release_book_records_each_service_and_refuses_a_damaged_file(tmp_path: Path) -> None:
    book = ReleaseBook(tmp_path / "run" / "releases.json")
    assert book.read() == {}

    assert book.record("catalog", "v2") is None
    assert book.record("orders", "1.4.0") is None
    assert book.record("catalog", "v3") == "v2"
    assert book.read() == {"catalog": "v3", "orders": "1.4.0"}

    book.path.write_text('{"catalog": 3}')
    with pytest.raises(ReleaseFileError, match="not a JSON object of service names to releases"):
        book.read()


def state(*statuses: tuple[str, int, str]) -> RuntimeNotice:
    return RuntimeNotice("state", instances=tuple(
        InstanceStatus(group, index, 100 + index, 8000 + index, value, None, 0)
        for group, index, value in statuses))


def test_serve_looks_at_the_service_whose_track_changed_and_counts_tracks_as_the_service() -> None:
    liveness = ServiceLiveness()
    liveness.apply(state(("catalog", 0, "running")))

    assert liveness.apply(state(("catalog", 0, "running"), ("catalog@v2", 0, "starting"))) == set()
    crashed = RuntimeNotice("exited", service="catalog@v2", instance=0, exit="exit 3")
    assert liveness.apply(crashed) == {"catalog"}
    assert liveness.serving("catalog")  # its own instance still runs
    liveness.apply(state(("catalog", 0, "running"), ("catalog@v2", 0, "failed")))
    assert liveness.down_for_good() == {}, "a failed track beside a running service is the deploy's business"
    assert liveness.apply(state(("catalog", 0, "failed"), ("catalog@v2", 0, "failed"))) == {"catalog"}
    assert liveness.down_for_good() == {"catalog": 2}


def test_ps_shows_the_release_of_each_instance() -> None:
    statuses = [InstanceStatus("catalog", 0, 10, 8101, "running", T0, 0, version="v1"),
                InstanceStatus("catalog@v2", 0, 11, 9001, "running", T0, 0, version="v2"),
                InstanceStatus("worker", 0, 12, None, "running", T0, 0)]
    console = Console(width=200, record=True)

    console.print(ps_table(statuses, T0))

    rows = [cells(line) for line in console.export_text().splitlines() if cells(line)]
    assert rows[0][:4] == ["SERVICE", "#", "VERSION", "PID"]
    assert [row[:3] for row in rows[1:]] == [
        ["catalog", "0", "v1"], ["catalog@v2", "0", "v2"], ["worker", "0", "-"]]


def cells(line: str) -> list[str]:
    """The texts of one row of a drawn table."""
    return [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
