"""Checklists: the operator's daily, weekly and monthly lists, as runbooks that only look.

A checklist is a runbook file whose steps are `check`, `query`, `report` and `note` steps: each
item is judged ok, warned or failed, nothing is changed, and so `serve` can run it with nobody
watching. The inventory's `checklists:` section turns on the schedule: its presence alone runs
each list at the manual's cadence (morning 09:00, afternoon 15:00, end of day 18:00 every day;
weekly on Monday at 10:00; monthly on the 1st at 10:00, all UTC); `schedules` changes a time,
turns a list off or adds one of the site's own.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from opsplane.config.types import Duration, Strict, zone

# The manual's cadence (its times are UTC): what a `checklists:` section runs when it says nothing.
DEFAULT_CRON = {
    "morning": "0 9 * * *",
    "afternoon": "0 15 * * *",
    "end-of-day": "0 18 * * *",
    "weekly": "0 10 * * 1",
    "monthly": "0 10 1 * *",
}
# What a checklist step may be: looks that change nothing.
ITEM_KINDS = ("check", "query", "report", "note")
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ChecklistSchedule(Strict):
    """When one checklist runs: `at` a time every day, or a `cron` expression."""

    at: str | None = Field(None, description='A wall-clock time every day, "HH:MM" (08:00).')
    cron: str | None = Field(None, description="A cron expression (minute hour day-of-month month "
                             "day-of-week), such as '0 10 * * 1' for Mondays at 10:00.")
    timezone: str | None = Field(None, description="The wall clock it follows; default: the section's.")
    enabled: bool = Field(True, description="false: the list is not run by `serve` (it can still be "
                          "run with `opsplane checklist run`).")

    @field_validator("at")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not _AT.match(value):
            raise ValueError(f'expected a time of day "HH:MM" such as "08:00", got {value!r}')
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from opsplane.backup.schedule import parse_cron

        if value is not None:
            parse_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else zone(value)

    @model_validator(mode="after")
    def _one_time(self) -> ChecklistSchedule:
        if self.at is not None and self.cron is not None:
            raise ValueError("give at or cron, not both")
        return self

    def expression(self, default: str | None) -> str | None:
        """The cron expression this schedule fires at; None when it names none and has no default."""
        if self.at is not None:
            match = _AT.match(self.at)
            assert match is not None
            return f"{int(match.group(2))} {int(match.group(1))} * * *"
        return self.cron or default


class ChecklistsSettings(Strict):
    """The inventory's `checklists:` section: present, `serve` runs the lists on their schedules."""

    dir: str | None = Field(None, description="Directory of the site's checklist files (*.yaml), "
                            "relative to the inventory file; one named like a shipped list replaces it.")
    timezone: str = Field("UTC", description="The wall clock the schedules follow (an IANA name).")
    late: Duration = Field(3600.0, description="How late `serve` still runs a list whose time passed "
                           "while it was not running; a list missed by more waits for its next time.")
    schedules: dict[str, ChecklistSchedule] = Field(
        default_factory=dict, description="By checklist name: when it runs. The shipped lists run at the "
        "manual's times unless named here; a list of the site's own runs only when named here.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return zone(value)

    def planned(self) -> dict[str, tuple[str, str]]:
        """Checklist name -> (cron expression, time zone) of every list `serve` runs."""
        found: dict[str, tuple[str, str]] = {}
        for name in [*DEFAULT_CRON, *(n for n in self.schedules if n not in DEFAULT_CRON)]:
            given = self.schedules.get(name, ChecklistSchedule())
            cron = given.expression(DEFAULT_CRON.get(name))
            if given.enabled and cron is not None:
                found[name] = (cron, given.timezone or self.timezone)
        return found
