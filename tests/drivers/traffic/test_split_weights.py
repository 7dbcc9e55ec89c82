"""split_weights: the weights that give candidate backends the share asked for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsplane.drivers.traffic import RouteInvalid, split_weights
from opsplane.drivers.traffic.base import MAX_WEIGHT


def candidate_share(weights: tuple[int, int], stable: int, candidate: int) -> float:
    stable_weight, candidate_weight = weights
    total = stable * stable_weight + candidate * candidate_weight
    return 100 * candidate * candidate_weight / total


def reachable(percent: float, stable: int, candidate: int) -> bool:
    """Whether weights 1..256 on both sides can come within a point of `percent`."""
    lowest = candidate_share((MAX_WEIGHT, 1), stable, candidate)
    highest = candidate_share((1, MAX_WEIGHT), stable, candidate)
    return lowest - 1 <= percent <= highest + 1


@given(percent=st.floats(min_value=0, max_value=100, exclude_min=True, exclude_max=True),
       stable=st.integers(1, 12), candidate=st.integers(1, 12))
def test_candidates_get_the_share_within_a_point_with_both_sides_serving(percent: float, stable: int,
                                                                          candidate: int) -> None:
    if not reachable(percent, stable, candidate):
        with pytest.raises(RouteInvalid, match="run fewer candidate backends"):
            split_weights(percent, stable, candidate)
        return
    weights = split_weights(percent, stable, candidate)
    assert all(1 <= w <= MAX_WEIGHT for w in weights)
    assert abs(candidate_share(weights, stable, candidate) - percent) <= 1


@given(stable=st.integers(0, 100), candidate=st.integers(0, 100))
def test_the_extremes_are_exact(stable: int, candidate: int) -> None:
    if stable:
        assert split_weights(0, stable, candidate)[1] == 0
        assert split_weights(0.0, stable, candidate)[0] > 0
    if candidate:
        assert split_weights(100, stable, candidate)[0] == 0
        assert split_weights(100.0, stable, candidate)[1] > 0


@pytest.mark.parametrize(("percent", "stable", "candidate", "weights"), [
    (5, 1, 1, (19, 1)),
    (50, 1, 1, (1, 1)),
    (50, 2, 1, (1, 2)),
    (10, 3, 1, (3, 1)),
    (25, 1, 3, (9, 1)),
    (1, 1, 1, (99, 1)),
])
def test_the_smallest_weights_that_give_the_share(percent: float, stable: int, candidate: int,
                                                  weights: tuple[int, int]) -> None:
    assert split_weights(percent, stable, candidate) == weights


@pytest.mark.parametrize(("percent", "stable", "candidate", "message"), [
    (-1, 1, 1, "out of range; expected 0 to 100"),
    (100.5, 1, 1, "out of range"),
    (float("nan"), 1, 1, "out of range"),
    (5, 0, 1, "to stable backends: there are none"),
    (5, 1, 0, "to candidate backends: there are none"),
    (0, 0, 3, "100 % to stable backends: there are none"),
    (5, 1, -1, "candidate backend count -1"),
    (0.1, 1, 12, "can take from 4.48 % to 99.97 %"),
])
def test_what_cannot_be_split_is_refused_with_the_reason(percent: float, stable: int, candidate: int,
                                                         message: str) -> None:
    with pytest.raises(RouteInvalid, match=message.replace("(", r"\(")):
        split_weights(percent, stable, candidate)
