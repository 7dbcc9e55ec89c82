"""SampleStore: the scraper's window of samples, read by the PromQL engine through select()."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime

import pytest

from opsplane.clock import ManualClock
from opsplane.errors import UsageError
from opsplane.metrics.promql import InstantVector, Labels, Matcher, instant, is_stale
from opsplane.metrics.store import SampleStore

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
T0 = START.timestamp()


def series(name: str, **labels: str) -> Labels:
    return tuple(sorted({"__name__": name, **labels}.items()))


def store_at(clock: ManualClock, **options: float) -> SampleStore:
    return SampleStore(clock=clock, **options)  # type: ignore[arg-type]


def values(store: SampleStore, name: str, start: float = 0.0, end: float = math.inf) -> dict[Labels, list]:
    return {labels: list(samples) for labels, samples in store.select([Matcher("__name__", "=", name)],
                                                                        start, end)}


def test_scrapes_are_selected_in_time_order_within_the_asked_range() -> None:
    clock = ManualClock(START)
    store = store_at(clock)
    up = series("up", job="api", instance="a")
    for i in range(4):
        store.append_scrape("api/a", T0 + 15 * i, [(up, float(i))])
    clock.advance(60)
    assert values(store, "up") == {up: [(T0, 0.0), (T0 + 15, 1.0), (T0 + 30, 2.0), (T0 + 45, 3.0)]}
    assert values(store, "up", T0 + 15, T0 + 30) == {up: [(T0 + 15, 1.0), (T0 + 30, 2.0)]}
    assert values(store, "up", T0 + 50, T0 + 90) == {}


def test_every_matcher_kind_selects_the_right_series() -> None:
    clock = ManualClock(START)
    store = store_at(clock)
    get = series("http_requests_total", code="200", method="GET")
    post = series("http_requests_total", code="500", method="POST")
    other = series("node_load1", instance="n1")
    store.append_scrape("t", T0, [(get, 1.0), (post, 2.0), (other, 3.0)])

    def chosen(*matchers: Matcher) -> set[Labels]:
        return {labels for labels, _ in store.select(list(matchers), T0 - 1, T0 + 1)}

    assert chosen(Matcher("__name__", "=", "http_requests_total"), Matcher("code", "!=", "200")) == {post}
    assert chosen(Matcher("__name__", "=~", "http_.*")) == {get, post}
    assert chosen(Matcher("method", "!~", "P.*")) == {get, other}
    assert chosen(Matcher("instance", "=", "")) == {get, post}  # a missing label matches ""
    assert chosen(Matcher("__name__", "=", "absent_metric")) == set()


def test_samples_older_than_the_window_are_dropped() -> None:
    clock = ManualClock(START)
    store = store_at(clock, window=600.0)
    up = series("up", job="api")
    for i in range(200):  # 50 minutes at 15 s
        clock.advance(15)
        store.append_scrape("api", clock.now().timestamp(), [(up, float(i))])
    kept = values(store, "up")[up]
    now = clock.now().timestamp()
    assert kept[0][0] >= now - 600 and kept[-1][0] == now
    assert len(kept) == 41  # (600 / 15) + 1: both ends of the window are inside it
    assert store.sample_count == 41


def test_a_selection_is_unchanged_by_later_scrapes_and_by_dropping_old_samples() -> None:
    # select() lends the store's own columns; an evaluation in one thread reads them while
    # scrapes append and trim in another.
    clock = ManualClock(START)
    store = store_at(clock, window=300.0)
    up = series("up", job="api")
    for i in range(30):
        clock.advance(15)
        store.append_scrape("api", clock.now().timestamp(), [(up, float(i))])
    [(_, lent)] = store.select([Matcher("__name__", "=", "up")], 0.0, math.inf)
    before = list(lent)
    assert len(before) == 21
    for i in range(30, 200):  # long enough for the oldest samples to be dropped for good
        clock.advance(15)
        store.append_scrape("api", clock.now().timestamp(), [(up, float(i))])
    assert list(lent) == before
    assert values(store, "up")[up][0] == (clock.now().timestamp() - 300, 179.0)


def test_a_series_missing_from_the_next_scrape_gets_a_stale_marker_at_that_scrape() -> None:
    clock = ManualClock(START)
    store = store_at(clock)
    kept, gone = series("queue_depth", queue="orders"), series("queue_depth", queue="refunds")
    store.append_scrape("q", T0, [(kept, 4.0), (gone, 7.0)])
    result = store.append_scrape("q", T0 + 15, [(kept, 5.0)])
    assert result.stale_marked == 1
    samples = values(store, "queue_depth")[gone]
    assert samples[0] == (T0, 7.0)
    assert samples[1][0] == T0 + 15 and is_stale(samples[1][1])
    # The marker is written once, not at every later scrape.
    assert store.append_scrape("q", T0 + 30, [(kept, 6.0)]).stale_marked == 0
    assert len(values(store, "queue_depth")[gone]) == 2


def test_a_series_that_comes_back_after_its_stale_marker_continues() -> None:
    store = store_at(ManualClock(START))
    flapping = series("queue_depth", queue="refunds")
    store.append_scrape("q", T0, [(flapping, 1.0)])
    store.append_scrape("q", T0 + 15, [])
    store.append_scrape("q", T0 + 30, [(flapping, 3.0)])
    samples = values(store, "queue_depth")[flapping]
    assert [t for t, _ in samples] == [T0, T0 + 15, T0 + 30]
    assert samples[2][1] == 3.0 and is_stale(samples[1][1])


def test_queries_leave_out_stale_markers_inside_their_window_and_not_before_it() -> None:
    clock = ManualClock(START)
    store = store_at(clock)
    flapping = series("queue_depth", queue="refunds")
    for step, present in enumerate([True, True, False, True, True]):
        store.append_scrape("q", T0 + 15 * step, [(flapping, float(step))] if present else [])
    clock.advance(60)

    def counted(at: float, window: str, prometheus: int = 3) -> list[float]:
        value = instant(f"count_over_time(queue_depth[{window}])", store, at, prometheus=prometheus)
        assert isinstance(value, InstantVector)
        return [v for _, v in value.samples]

    assert counted(T0 + 60, "1m") == [3.0]  # T0+15 .. T0+60 holds the marker at T0+30
    assert counted(T0 + 60, "25s") == [2.0]  # T0+45 and T0+60, all after the marker
    assert counted(T0 + 30, "20s") == [1.0]  # the marker is the newest sample
    assert counted(T0 + 45, "15s", prometheus=2) == [1.0]  # the marker on the closed lower edge
    gone = instant("queue_depth", store, T0 + 40)
    assert isinstance(gone, InstantVector) and gone.samples == []


def test_a_nan_exported_by_a_target_is_not_a_stale_marker() -> None:
    store = store_at(ManualClock(START))
    ratio = series("success_ratio")
    store.append_scrape("t", T0, [(ratio, math.nan)])
    [(_, value)] = values(store, "success_ratio")[ratio]
    assert math.isnan(value) and not is_stale(value)


def test_a_target_that_goes_away_marks_every_series_it_reported_stale() -> None:
    store = store_at(ManualClock(START))
    a, b = series("up", job="api"), series("requests_total", job="api")
    other = series("up", job="web")
    store.append_scrape("api", T0, [(a, 1.0), (b, 10.0)])
    store.append_scrape("web", T0, [(other, 1.0)])
    assert store.mark_target_gone("api", T0 + 15) == 2
    assert is_stale(values(store, "up")[a][-1][1])
    assert is_stale(values(store, "requests_total")[b][-1][1])
    assert len(values(store, "up")[other]) == 1
    assert store.targets() == ["web"]
    assert store.mark_target_gone("api", T0 + 30) == 0


def test_new_series_beyond_the_target_limit_are_refused_and_reported() -> None:
    store = store_at(ManualClock(START), series_limit=3)
    first = [(series("m", n=str(i)), float(i)) for i in range(3)]
    assert store.append_scrape("t", T0, first).refused_series == 0
    more = [(series("m", n=str(i)), float(i)) for i in range(6)]
    result = store.append_scrape("t", T0 + 15, list(reversed(more)))
    assert result.over_limit and result.refused_series == 3 and result.new_series == 0
    # The series the target already had are kept, whatever their order in the scrape.
    assert set(values(store, "m")) == {labels for labels, _ in first}
    # Another target has its own allowance.
    assert store.append_scrape("u", T0 + 15, [(series("m", n="u"), 1.0)]).refused_series == 0


def test_series_that_leave_make_room_for_new_ones_under_the_limit() -> None:
    store = store_at(ManualClock(START), series_limit=2)
    store.append_scrape("t", T0, [(series("m", n="1"), 1.0), (series("m", n="2"), 2.0)])
    result = store.append_scrape("t", T0 + 15, [(series("m", n="2"), 2.0), (series("m", n="3"), 3.0)])
    assert result.refused_series == 0 and result.new_series == 1 and result.stale_marked == 1


def test_a_sample_not_newer_than_the_last_one_is_refused_and_counted() -> None:
    store = store_at(ManualClock(START))
    up = series("up")
    store.append_scrape("t", T0 + 30, [(up, 1.0)])
    assert store.append_scrape("t", T0 + 30, [(up, 2.0)]).out_of_order == 1
    assert store.append_scrape("t", T0 + 15, [(up, 3.0)]).out_of_order == 1
    assert values(store, "up")[up] == [(T0 + 30, 1.0)]


def test_a_series_repeated_in_one_scrape_keeps_its_first_value() -> None:
    store = store_at(ManualClock(START))
    up = series("up")
    result = store.append_scrape("t", T0, [(up, 1.0), (up, 0.0)])
    assert result.appended == 1 and values(store, "up")[up] == [(T0, 1.0)]


def test_expire_forgets_series_no_target_reports_once_their_samples_left_the_window() -> None:
    clock = ManualClock(START)
    store = store_at(clock, window=300.0)
    gone, kept = series("m", n="gone"), series("m", n="kept")
    store.append_scrape("t", T0, [(gone, 1.0), (kept, 1.0)])
    store.append_scrape("t", T0 + 15, [(kept, 2.0)])
    clock.advance(200)
    assert store.expire() == 0  # the stale marker is still inside the window
    clock.advance(200)
    assert store.expire() == 1  # kept is still reported even though its samples aged out
    assert store.series_count == 1 and set(values(store, "m")) == set()
    store.append_scrape("t", clock.now().timestamp(), [(kept, 3.0)])
    assert set(values(store, "m")) == {kept}


def test_equal_label_sets_from_different_scrapes_are_stored_once() -> None:
    store = store_at(ManualClock(START))
    for i in range(3):
        fresh = (("__name__", "".join(["u", "p"])), ("job", "".join(["a", "pi"])))
        store.append_scrape("t", T0 + 15 * i, [(fresh, 1.0)])
    [(labels, _)] = list(store.select([Matcher("job", "=", "api")], T0, T0 + 60))
    again = next(iter(store.select([Matcher("__name__", "=", "up")], T0, T0 + 60)))[0]
    assert labels is again
    assert labels[1][1] is sys.intern("api")


def test_unsorted_labels_are_stored_sorted() -> None:
    store = store_at(ManualClock(START))
    store.append_scrape("t", T0, [((("job", "api"), ("__name__", "up")), 1.0)])
    [(labels, _)] = list(store.select([Matcher("__name__", "=", "up")], T0, T0))
    assert labels == (("__name__", "up"), ("job", "api"))


@pytest.mark.parametrize(("option", "bad"), [("window", 0.0), ("series_limit", 0)])
def test_a_nonsensical_window_or_limit_is_a_usage_error(option: str, bad: float) -> None:
    with pytest.raises(UsageError, match="must be"):
        SampleStore(**{option: bad})  # type: ignore[arg-type]


def test_the_engine_reads_the_store_and_stops_seeing_a_series_at_its_stale_marker() -> None:
    clock = ManualClock(START)
    store = store_at(clock)
    kept, gone = series("queue_depth", queue="orders"), series("queue_depth", queue="refunds")
    store.append_scrape("q", T0, [(kept, 4.0), (gone, 7.0)])
    store.append_scrape("q", T0 + 15, [(kept, 5.0)])
    clock.advance(30)
    before = instant("queue_depth", store, T0 + 10)
    after = instant("queue_depth", store, T0 + 20)
    assert isinstance(before, InstantVector) and isinstance(after, InstantVector)
    assert sorted(v for _, v in before.samples) == [4.0, 7.0]
    # Without the marker the refunds series would linger for the 5-minute lookback.
    assert [(dict(labels)["queue"], v) for labels, v in after.samples] == [("orders", 5.0)]


def test_series_of_one_target_share_their_common_label_pairs() -> None:
    store = store_at(ManualClock(START))
    scrape = [(series("a", job="api", path="/x"), 1.0), (series("b", job="api", path="/y"), 2.0)]
    store.append_scrape("t", T0, scrape)
    [(a, _)] = list(store.select([Matcher("__name__", "=", "a")], T0, T0))
    [(b, _)] = list(store.select([Matcher("__name__", "=", "b")], T0, T0))
    assert a[1] == ("job", "api") and a[1] is b[1]


def test_a_repeated_select_sees_every_later_scrape_and_the_window_moving() -> None:
    clock = ManualClock(START)
    store = store_at(clock, window=60.0)
    up = series("up")
    store.append_scrape("t", T0, [(up, 1.0)])
    assert values(store, "up") == values(store, "up") == {up: [(T0, 1.0)]}
    store.append_scrape("t", T0 + 15, [(up, 0.0)])
    assert values(store, "up") == {up: [(T0, 1.0), (T0 + 15, 0.0)]}
    clock.advance(70)  # no scrape: only the clock moves, and T0 leaves the window
    assert values(store, "up") == {up: [(T0 + 15, 0.0)]}


def test_a_sample_is_seen_by_an_evaluation_in_the_same_millisecond() -> None:
    # A rule cycle can start right after opsplane stored its own series (a process that just
    # exited); the evaluation rounds its time to the millisecond, and must still see them.
    clock = ManualClock(START)
    store = store_at(clock)
    down = series("opsplane_service_not_running", service="payments")
    store.append_scrape("opsplane", T0 + 0.0004, [(down, 1.0)])
    seen = instant(f"{down[0][1]}", store, T0 + 0.0004)
    assert isinstance(seen, InstantVector) and [v for _, v in seen.samples] == [1.0]
