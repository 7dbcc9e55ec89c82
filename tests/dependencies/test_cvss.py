"""The CVSS v3 base score against published vectors whose scores the specification's
calculator gives, and the severity and fix time the manual attaches to each band."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsplane.dependencies.cvss import CvssError, base_score, roundup
from opsplane.dependencies.models import FixTimes
from opsplane.dependencies.severity import due, level

PUBLISHED = [
    # CVE-2020-14343 (PyYAML full_load), CVE-2021-44228 (Log4Shell): the extremes
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
    # CVE-2021-33503 (urllib3 ReDoS): availability only
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 8.8),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2),
    # reflected cross-site scripting: scope changed, user interaction
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N", 6.5),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
    ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
]


@pytest.mark.parametrize(("vector", "score"), PUBLISHED)
def test_base_scores_of_published_vectors(vector: str, score: float) -> None:
    assert base_score(vector) == score


def test_metrics_may_come_in_any_order_and_temporal_ones_are_ignored() -> None:
    assert base_score("CVSS:3.1/S:U/AV:N/AC:L/PR:N/UI:N/A:H/I:H/C:H/E:P/RL:O/RC:C") == 9.8


def test_the_3_1_round_up_is_free_of_float_noise() -> None:
    assert roundup(4.000000000000001) == 4.0  # 3.0's ceil would give 4.1
    assert roundup(4.02) == 4.1
    assert roundup(4.000000000000001, "3.0") == 4.1


@pytest.mark.parametrize("vector", [
    "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no version prefix
    "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # A missing
    "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
])
def test_what_is_no_v3_vector_is_refused(vector: str) -> None:
    with pytest.raises(CvssError):
        base_score(vector)


def test_the_manual_bands_and_fix_times() -> None:
    assert [level(s) for s in (10.0, 9.0, 8.9, 7.0, 6.9, 4.0, 3.9, 0.0)] == [
        "critical", "critical", "high", "high", "medium", "medium", "low", "low"]
    seen = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    times = FixTimes()
    assert due(seen, "critical", times) == seen + timedelta(hours=4)
    assert due(seen, "high", times) == seen + timedelta(hours=24)
    assert due(seen, "medium", times) == seen + timedelta(weeks=1)
    assert due(seen, "low", times) is None
