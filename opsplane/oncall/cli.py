"""`opsplane oncall`: who is on call, the coming shifts, the calendar, handoffs, overrides,
swaps and the escalation a severity would follow."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, config_path, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.config.types import parse_duration
from opsplane.errors import UsageError
from opsplane.oncall import ical, report, service
from opsplane.oncall.models import WEEKDAYS, OncallSettings, Schedule
from opsplane.oncall.rotation import Shift

app = typer.Typer(no_args_is_help=True)

SCHEDULE_HELP = "Only this schedule (default: every schedule)."


@app.command()
def now(
    ctx: typer.Context,
    schedule: str = typer.Option(None, "--schedule", "-s", help=SCHEDULE_HELP),
    at: str = typer.Option(None, "--at", help="Ask about another time, ISO 8601 (default: now)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Who is on call on every layer, until when, how to reach them, and the last handoff note."""
    settings = _settings(ctx)
    names = _schedule_names(settings, schedule)
    instant = _when(at, settings.schedules[names[0]], "--at") if at else SystemClock().now()
    with open_store().session() as session:
        roster = service.get_roster(session, settings=settings)
        notes = {name: next(iter(service.get_handoffs(session, schedule=name, limit=1)), None)
                 for name in names}
    shown = report.now_report(settings, roster, at=instant, schedules=names, last_notes=notes)
    if json_out:
        print_json(shown)
        return
    table = Table("SCHEDULE", "LAYER", "ON CALL", "SINCE", "UNTIL", "SOURCE", "CONTACT")
    for item in shown["schedules"]:
        zone = ZoneInfo(item["timezone"])
        for layer in item["layers"]:
            table.add_row(item["schedule"], layer["layer"], layer["display_name"],
                          _local(layer["start"], zone), _local(layer["end"], zone), layer["source"],
                          ", ".join(f"{k} {v}" for k, v in layer["contact"].items()))
    out.print(table)
    for item in shown["schedules"]:
        if last := item["handoff"]:
            written = _local(last["at"], ZoneInfo(item["timezone"]))
            out.print(f"Handoff note on {item['schedule']} ({written}, {last['actor']}): {last['note']}")


@app.command("schedule")
def schedule_command(
    ctx: typer.Context,
    weeks: int = typer.Option(4, "--weeks", "-w", min=1, max=104, help="How many weeks ahead."),
    schedule: str = typer.Option(None, "--schedule", "-s", help=SCHEDULE_HELP),
    start: str = typer.Option(None, "--from", help="Start from another time, ISO 8601 (default: now)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The shifts of the coming weeks, overrides and swaps included."""
    settings = _settings(ctx)
    names = _schedule_names(settings, schedule)
    begin = _when(start, settings.schedules[names[0]], "--from") if start else SystemClock().now()
    shifts = _shifts(settings, names, begin, weeks)
    if json_out:
        print_json([report.shift_dict(s, settings) for s in shifts])
        return
    table = Table("SCHEDULE", "LAYER", "ON CALL", "FROM", "UNTIL", "SOURCE")
    for shift in shifts:
        zone = ZoneInfo(settings.schedules[shift.schedule].timezone)
        table.add_row(shift.schedule, shift.layer, settings.display_name(shift.person),
                      _local(shift.start, zone), _local(shift.end, zone), shift.source)
    out.print(table)


@app.command("ical")
def ical_command(
    ctx: typer.Context,
    out_file: Path = typer.Option(None, "--out", "-o", help="Write to this file (default: standard output)."),
    weeks: int = typer.Option(12, "--weeks", "-w", min=1, max=104, help="How many weeks ahead."),
    schedule: str = typer.Option(None, "--schedule", "-s", help=SCHEDULE_HELP),
) -> None:
    """The coming shifts as an iCalendar file (one event per shift, times in UTC)."""
    settings = _settings(ctx)
    names = _schedule_names(settings, schedule)
    clock = SystemClock()
    text = ical.calendar(_shifts(settings, names, clock.now(), weeks), settings, stamp=clock.now())
    if out_file is None:
        typer.echo(text, nl=False)
        return
    out_file.write_bytes(text.encode())
    out.print(f"Wrote {text.count('BEGIN:VEVENT')} shifts to {out_file}.")


@app.command()
def handoff(
    ctx: typer.Context,
    note: str = typer.Option(..., "--note", "-m", help="What the next shift should know."),
    schedule: str = typer.Option(None, "--schedule", "-s", help="The schedule (default: the only one)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Leave a handoff note for the next shift (recorded in the event log)."""
    settings = _settings(ctx)
    name = _one_schedule(settings, schedule)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        recorded = service.record_handoff(session, settings=settings, schedule=name, note=note,
                                          actor=actor)
    if json_out:
        print_json(recorded.as_dict())
        return
    who = ", ".join(f"{layer} {settings.display_name(p)}" for layer, p in recorded.on_call.items())
    out.print(f"Handoff note recorded on {name} ({who}).")


@app.command()
def override(
    ctx: typer.Context,
    layer: str = typer.Option(..., "--layer", "-l", help="The layer, such as primary."),
    person: str = typer.Option(..., "--person", "-p", help="Who is on call instead."),
    start: str = typer.Option(
        ..., "--start", help="ISO 8601 time (without offset: the schedule's zone), or now."
    ),
    end: str = typer.Option(..., "--end", help="ISO 8601 time, or a length after --start (8h, 2d)."),
    schedule: str = typer.Option(None, "--schedule", "-s", help="The schedule (default: the only one)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Put someone else on call for a while (recorded in the event log; later overrides win)."""
    settings = _settings(ctx)
    name = _one_schedule(settings, schedule)
    spec = settings.schedules[name]
    begins = _when(start, spec, "--start")
    ends = _end(end, begins, spec)
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        made = service.record_override(session, settings=settings, schedule=name, layer=layer,
                                       person=person, start=begins, end=ends, actor=actor)
    if json_out:
        print_json({"schedule": name, "layer": layer, "person": person,
                    "start": made.start.isoformat(), "end": made.end.isoformat()})
        return
    zone = ZoneInfo(spec.timezone)
    out.print(f"{settings.display_name(person)} is {layer} on call for {name} from "
              f"{_local(made.start, zone)} until {_local(made.end, zone)}.")


@app.command()
def swap(
    ctx: typer.Context,
    layer: str = typer.Option(..., "--layer", "-l", help="The layer, such as primary."),
    shift: str = typer.Option(..., "--shift", help="A date or time in the first shift (a handoff day "
                              "means the shift that starts then)."),
    with_: str = typer.Option(..., "--with", help="A date or time in the other shift."),
    schedule: str = typer.Option(None, "--schedule", "-s", help="The schedule (default: the only one)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Trade two whole shifts of a layer between their people (recorded in the event log)."""
    settings = _settings(ctx)
    name = _one_schedule(settings, schedule)
    spec = settings.schedules[name]
    first, second = _in_shift(shift, spec, "--shift"), _in_shift(with_, spec, "--with")
    actor = acting_as(Role.RESPONDER)
    with open_store(create=True).session() as session:
        service.record_swap(session, settings=settings, schedule=name, layer=layer, first=first,
                            second=second, actor=actor)
        roster = service.get_roster(session, settings=settings)
    shifts = [roster.on_call(name, layer, first), roster.on_call(name, layer, second)]
    if json_out:
        print_json([report.shift_dict(s, settings) for s in shifts])
        return
    zone = ZoneInfo(spec.timezone)
    for s in shifts:
        out.print(f"{_local(s.start, zone)} - {_local(s.end, zone)}: "
                  f"{settings.display_name(s.person)} ({layer} of {name})")


@app.command("escalation")
def escalation_command(
    ctx: typer.Context,
    severity: str = typer.Argument("P0", help="P0, P1, P2 or P3."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The steps a severity escalates through, and whom each would reach if it fired now."""
    settings = _settings(ctx)
    if severity.upper() not in ("P0", "P1", "P2", "P3"):
        raise UsageError(f"unknown severity {severity!r}; expected P0, P1, P2 or P3")
    severity = severity.upper()
    with open_store().session() as session:
        roster = service.get_roster(session, settings=settings)
    shown = report.escalation_report(settings, roster, severity=severity, triggered_at=SystemClock().now())
    if json_out:
        print_json(shown)
        return
    table = Table("AFTER", "STEP", "NOTIFY", "VIA")
    for step in shown["steps"]:
        for r in step["recipients"]:
            via = r["problem"] or ", ".join(f"{c['kind']} {c['address']}" for c in r["contacts"]) or r["kind"]
            who = f"{r['display_name']} ({r['because']})" if r["kind"] == "person" else r["display_name"]
            number = f"{step['round'] + 1}.{step['step'] + 1}"
            table.add_row(_minutes(step["offset_seconds"]), number, who, via)
    out.print(f"{severity} escalates by policy {shown['policy']}; "
              "an acknowledgement stops every later step.")
    out.print(table)


# --- helpers -----------------------------------------------------------------------------


def _settings(ctx: typer.Context) -> OncallSettings:
    from opsplane.config.loader import load

    return load(config_path(ctx)).oncall


def _schedule_names(settings: OncallSettings, name: str | None) -> list[str]:
    if not settings.schedules:
        raise UsageError("no on-call schedules in the inventory; add oncall.schedules (see docs/oncall.md)")
    if name is None:
        return list(settings.schedules)
    service.check_schedule(settings, schedule=name)
    return [name]


def _one_schedule(settings: OncallSettings, name: str | None) -> str:
    names = _schedule_names(settings, name)
    if len(names) > 1:
        raise UsageError(f"several schedules ({', '.join(names)}): choose one with --schedule")
    return names[0]


def _shifts(settings: OncallSettings, names: list[str], begin: datetime, weeks: int) -> list[Shift]:
    with open_store().session() as session:
        roster = service.get_roster(session, settings=settings)
    return report.upcoming_shifts(settings, roster, schedules=names, start=begin,
                                  end=begin + timedelta(weeks=weeks))


def _when(text: str, schedule: Schedule, option: str) -> datetime:
    """An instant from ISO 8601 text or 'now'; without an offset, in the schedule's zone."""
    if text.strip().lower() == "now":
        return SystemClock().now()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option}: cannot read time {text!r}; give ISO 8601 such as "
                         "2026-03-02T09:00 or 2026-03-02T09:00+01:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(schedule.timezone))
    return when.astimezone(UTC)


def _end(text: str, start: datetime, schedule: Schedule) -> datetime:
    try:
        return start + timedelta(seconds=parse_duration(text))
    except ValueError:
        return _when(text, schedule, "--end")


def _in_shift(text: str, schedule: Schedule, option: str) -> datetime:
    """An instant inside the shift a person means: a bare handoff weekday date is the shift that
    starts that day; any other bare date, the shift holding its noon."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return _when(text, schedule, option)
    zone = ZoneInfo(schedule.timezone)
    if WEEKDAYS[day.weekday()] == schedule.handoff.day:
        local = datetime.combine(day, schedule.handoff.time, tzinfo=zone) + timedelta(hours=1)
    else:
        local = datetime.combine(day, time(12, 0), tzinfo=zone)
    return local.astimezone(UTC)


def _local(value: datetime | str, zone: ZoneInfo) -> str:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"
