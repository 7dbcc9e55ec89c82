"""Backup schedules: cron expressions read with errors a person can act on, fire times in a time
zone through both daylight-saving changes, and whether a run is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsplane.backup.schedule import CronSchedule, due, next_due, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)  # type: ignore[misc]


def fires(schedule: CronSchedule, tz: str, start: datetime, end: datetime) -> list[datetime]:
    out, at = [], start
    while (at := schedule.next_after(at, tz)) < end:
        out.append(at)
    return out


# --- reading schedules ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["0 3 * * 0", "*/15 * * * *", "30 2 * * 1-5", "0 1,13 * * *",
                                  "0 4 1 * *", "0 3 * * sun", "0 0 29 2 *"])
def test_five_field_expressions_are_read_as_written(text: str) -> None:
    schedule = parse_cron(text)
    assert schedule.expression == text
    assert schedule.fields == text
    assert str(schedule) == text


@pytest.mark.parametrize(("nickname", "fields"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@DAILY", "0 0 * * *"),
])
def test_nicknames_stand_for_their_five_fields(nickname: str, fields: str) -> None:
    schedule = parse_cron(nickname)
    assert schedule.fields == fields
    assert schedule.expression == nickname


def test_extra_spaces_between_fields_are_ignored() -> None:
    assert parse_cron("  0  3 * *\t0 ").fields == "0 3 * * 0"


def test_a_wrong_number_of_fields_shows_the_expected_form() -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron("0 3 * *")
    assert str(caught.value) == ("expected 5 fields such as '0 3 * * 0' (minute hour day-of-month month "
                                 "day-of-week), got 4 in '0 3 * *'")


def test_six_fields_say_seconds_are_not_supported() -> None:
    with pytest.raises(ValueError, match=r"got 6 .*a seconds field is not supported"):
        parse_cron("0 0 3 * * 0")


@pytest.mark.parametrize(("text", "field", "hint"), [
    ("61 * * * *", "minute", "0-59"), ("0 24 * * *", "hour", "0-23"),
    ("0 0 32 * *", "day-of-month", "1-31"), ("0 0 * 13 *", "month", "1-12"),
    ("0 0 * * 8", "day-of-week", "0-7"), ("0 0 5-1 * *", "day-of-month", "1-31"),
    ("*/0 * * * *", "minute", "0-59"), ("0 3 * * funday", "day-of-week", "SUN-SAT"),
])
def test_a_bad_field_is_named_with_what_it_may_hold(text: str, field: str, hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron(text)
    message = str(caught.value)
    assert f"the {field} field" in message
    assert hint in message
    assert repr(text) in message


def test_a_date_that_never_occurs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"never fires: day-of-month '30' does not occur in month '2'"):
        parse_cron("0 0 30 2 *")


@pytest.mark.parametrize("text", ["@reboot", "@often"])
def test_unknown_nicknames_list_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"unknown cron nickname .* @hourly, @daily"):
        parse_cron(text)


@pytest.mark.parametrize("value", [None, 5, ["0", "3"]])
def test_a_schedule_must_be_text(value: object) -> None:
    with pytest.raises(ValueError, match="expected a cron schedule"):
        parse_cron(value)


def test_describe_says_it_in_words_with_the_zone() -> None:
    assert parse_cron("0 3 * * 0").describe("Europe/Berlin") == "At 03:00 on Sunday (Europe/Berlin)"
    assert parse_cron("@daily").describe(BERLIN) == "At 00:00 every day (Europe/Berlin)"
    assert parse_cron("30 2 * * 1-5").describe() == "At 02:30 on Monday through Friday"


# --- fire times --------------------------------------------------------------------------------

def test_next_after_is_in_the_schedules_zone_and_given_in_utc() -> None:
    weekly = parse_cron("0 3 * * 0")
    fire = weekly.next_after(utc(2026, 12, 2, 12), "Europe/Berlin")
    assert fire == utc(2026, 12, 6, 2)  # Sunday 03:00 CET
    assert fire.tzinfo is UTC


def test_next_after_is_strictly_after_and_previous_includes_the_instant() -> None:
    daily = parse_cron("0 3 * * *")
    assert daily.next_after(utc(2026, 12, 3, 3), "UTC") == utc(2026, 12, 4, 3)
    assert daily.previous_at_or_before(utc(2026, 12, 3, 3), "UTC") == utc(2026, 12, 3, 3)
    assert daily.previous_at_or_before(utc(2026, 12, 3, 2, 59, 59, 999999), "UTC") == utc(2026, 12, 2, 3)
    assert daily.previous_at_or_before(utc(2026, 12, 3, 3, 0, 0, 500), "UTC") == utc(2026, 12, 3, 3)


def test_any_offset_of_the_instant_gives_the_same_answer() -> None:
    daily = parse_cron("0 3 * * *")
    in_utc = daily.next_after(utc(2026, 12, 3, 12), "Europe/Berlin")
    in_tokyo = daily.next_after(utc(2026, 12, 3, 12).astimezone(ZoneInfo("Asia/Tokyo")), "Europe/Berlin")
    assert in_utc == in_tokyo == utc(2026, 12, 4, 2)


def test_a_naive_instant_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"has no UTC offset: .*\+00:00"):
        parse_cron("@daily").next_after(datetime(2026, 12, 3), "UTC")


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_cron("@daily").next_after(utc(2026, 12, 3), "Mars/Olympus")


def test_monthly_fires_on_the_first_at_midnight_local() -> None:
    monthly = parse_cron("@monthly")
    assert fires(monthly, "Europe/Berlin", utc(2026, 5, 15), utc(2026, 8, 15)) == [
        utc(2026, 5, 31, 22), utc(2026, 6, 30, 22), utc(2026, 7, 31, 22)]


# --- daylight-saving changes (Europe/Berlin: 29 March 2026 02:00 -> 03:00, 25 October 03:00 -> 02:00)

def test_a_daily_0230_fires_once_at_0300_on_the_spring_forward_day() -> None:
    daily = parse_cron("30 2 * * *")
    got = fires(daily, "Europe/Berlin", berlin(2026, 3, 28, 12), berlin(2026, 3, 31, 12))
    assert [fire.astimezone(BERLIN) for fire in got] == [
        berlin(2026, 3, 29, 3, 0), berlin(2026, 3, 30, 2, 30), berlin(2026, 3, 31, 2, 30)]


def test_a_daily_0230_fires_once_on_the_fall_back_day_at_the_first_0230() -> None:
    daily = parse_cron("30 2 * * *")
    got = fires(daily, "Europe/Berlin", berlin(2026, 10, 24, 12), berlin(2026, 10, 27, 12))
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
    assert got[0].astimezone(BERLIN).utcoffset() == timedelta(hours=2)  # CEST: the first 02:30


def test_inside_the_repeated_hour_the_next_fire_is_tomorrow_not_the_first_copy() -> None:
    daily = parse_cron("30 2 * * *")
    second_copy = berlin(2026, 10, 25, 2, 15, fold=1)  # 01:15 UTC, after the 02:30 CEST run
    assert daily.next_after(second_copy, BERLIN) == utc(2026, 10, 26, 1, 30)
    assert daily.previous_at_or_before(second_copy, BERLIN) == utc(2026, 10, 25, 0, 30)


def test_the_previous_fire_on_the_spring_forward_day_is_the_shifted_one() -> None:
    daily = parse_cron("30 2 * * *")
    assert daily.previous_at_or_before(berlin(2026, 3, 29, 12), BERLIN) == berlin(2026, 3, 29, 3)
    assert daily.previous_at_or_before(berlin(2026, 3, 29, 2, 59, 59).astimezone(UTC) - timedelta(hours=1),
                                       BERLIN) == berlin(2026, 3, 28, 2, 30)


def test_an_hourly_schedule_fires_in_both_copies_of_the_repeated_hour_and_skips_the_lost_one() -> None:
    hourly = parse_cron("@hourly")
    autumn = fires(hourly, "Europe/Berlin", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30))
    assert autumn == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2),
                      utc(2026, 10, 25, 3)]
    spring = fires(hourly, "Europe/Berlin", utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 30))
    assert [fire.astimezone(BERLIN).hour for fire in spring] == [1, 3, 4]


def test_each_day_of_a_year_in_berlin_gets_exactly_one_nightly_run() -> None:
    nightly = parse_cron("30 2 * * *")
    got = fires(nightly, "Europe/Berlin", berlin(2025, 12, 31, 12), berlin(2026, 12, 31, 12))
    days = [fire.astimezone(BERLIN).date() for fire in got]
    assert len(days) == len(set(days)) == 365


SCHEDULES = ["30 2 * * *", "*/20 * * * *", "0 * * * *", "15 1-3 * * *", "0 3 * * 0", "@monthly",
             "0,30 2 * * *"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
INSTANTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEDULES), st.sampled_from(ZONES), INSTANTS)
def test_previous_and_next_bracket_every_instant_with_no_fire_between(text: str, zone: str,
                                                                      at: datetime) -> None:
    schedule = parse_cron(text)
    previous = schedule.previous_at_or_before(at, zone)
    following = schedule.next_after(at, zone)
    assert previous <= at < following
    assert schedule.next_after(previous, zone) == following
    assert schedule.previous_at_or_before(following, zone) == following
    assert schedule.previous_at_or_before(following - timedelta(microseconds=1), zone) == previous


@pytest.mark.parametrize("text", SCHEDULES)
@pytest.mark.parametrize(("zone", "day"), [("Europe/Berlin", datetime(2026, 3, 28, 22, tzinfo=UTC)),
                                           ("Europe/Berlin", datetime(2026, 10, 24, 22, tzinfo=UTC)),
                                           ("Australia/Lord_Howe", datetime(2026, 4, 4, 12, tzinfo=UTC))])
def test_fire_times_around_a_change_bracket_every_instant(text: str, zone: str, day: datetime) -> None:
    schedule = parse_cron(text)
    for step in range(0, 6 * 60, 7):  # every 7 minutes through six hours around the change
        at = day + timedelta(minutes=step, seconds=step % 60)
        previous, following = schedule.previous_at_or_before(at, zone), schedule.next_after(at, zone)
        assert previous <= at < following
        assert schedule.next_after(previous, zone) == following


# --- due ---------------------------------------------------------------------------------------

NIGHTLY = parse_cron("0 3 * * *")


def test_a_schedule_that_never_ran_is_due_at_once() -> None:
    assert due(NIGHTLY, "UTC", None, utc(2026, 12, 3, 12))
    assert next_due(NIGHTLY, "UTC", None, utc(2026, 12, 3, 12)) == utc(2026, 12, 3, 12)


def test_a_run_that_started_at_or_after_the_last_fire_time_covers_it() -> None:
    now = utc(2026, 12, 3, 12)
    assert not due(NIGHTLY, "UTC", utc(2026, 12, 3, 3), now)
    assert not due(NIGHTLY, "UTC", utc(2026, 12, 3, 3, 0, 7), now)
    assert next_due(NIGHTLY, "UTC", utc(2026, 12, 3, 3), now) == utc(2026, 12, 4, 3)


def test_a_run_that_started_before_the_last_fire_time_means_one_is_due_since_then() -> None:
    now = utc(2026, 12, 3, 12)
    assert due(NIGHTLY, "UTC", utc(2026, 12, 2, 3), now)
    assert next_due(NIGHTLY, "UTC", utc(2026, 12, 2, 3), now) == utc(2026, 12, 3, 3)


def test_due_turns_true_exactly_at_the_fire_time() -> None:
    last = utc(2026, 12, 2, 3)
    assert not due(NIGHTLY, "UTC", last, utc(2026, 12, 3, 2, 59, 59))
    assert due(NIGHTLY, "UTC", last, utc(2026, 12, 3, 3))


def test_the_spring_forward_run_is_due_once_in_berlin() -> None:
    daily = parse_cron("30 2 * * *")
    last = berlin(2026, 3, 28, 2, 30)
    assert not due(daily, BERLIN, last, berlin(2026, 3, 29, 1, 59))
    assert due(daily, BERLIN, last, berlin(2026, 3, 29, 3, 0))
    assert not due(daily, BERLIN, berlin(2026, 3, 29, 3, 0), berlin(2026, 3, 29, 23))


def test_the_fall_back_run_is_not_due_again_in_the_repeated_hour() -> None:
    daily = parse_cron("30 2 * * *")
    ran = berlin(2026, 10, 25, 2, 30)  # the first 02:30 (CEST)
    assert not due(daily, BERLIN, ran, berlin(2026, 10, 25, 2, 30, fold=1))
    assert not due(daily, BERLIN, ran, berlin(2026, 10, 25, 2, 45, fold=1))
    assert next_due(daily, BERLIN, ran, berlin(2026, 10, 25, 2, 45, fold=1)) == utc(2026, 10, 26, 1, 30)
