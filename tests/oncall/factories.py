"""On-call settings for the tests, built fresh through the real pydantic models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsplane.oncall.models import OncallSettings

# A Wednesday in the week of 2026-03-02, the layers' first week: ana primary, ben secondary.
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)

PEOPLE: dict[str, Any] = {
    "ana": {"name": "Ana Silva", "team": "platform",
            "contact": {"pagerduty": "PANA", "sms": "+15550101", "phone": "+15550101",
                        "email": "ana@example.com", "slack": "U0ANA"}},
    "ben": {"name": "Ben Okafor", "contact": {"pagerduty": "PBEN", "phone": "+15550102"}},
    "cleo": {"name": "Cleo Park", "contact": {"pagerduty": "PCLEO"}},
    "dan": {"contact": {"email": "dan@example.com"}},
    "tina": {"name": "Tina Team-Lead", "contact": {"pagerduty": "PTINA", "sms": "+15550110"}},
    "paul": {"name": "Paul Platform-Lead", "contact": {"pagerduty": "PPAUL"}},
    "vera": {"name": "Vera VP", "contact": {"phone": "+15550199"}},
}


def oncall_data(**changes: Any) -> dict[str, Any]:
    """The `oncall:` section as YAML would give it: a Europe/Berlin schedule with a Monday
    09:00 handoff, primary ana, ben, cleo and secondary ben, cleo, ana from 2026-03-02."""
    data: dict[str, Any] = {
        "people": PEOPLE,
        "roles": {"team_lead": "tina", "platform_lead": "paul", "vp_engineering": "vera"},
        "schedules": {
            "platform": {
                "timezone": "Europe/Berlin",
                "handoff": {"day": "mon", "time": "09:00"},
                "layers": {
                    "primary": {"start": "2026-03-02", "rotation": ["ana", "ben", "cleo"]},
                    "secondary": {"start": "2026-03-02", "rotation": ["ben", "cleo", "ana"]},
                },
            }
        },
    }
    data.update(changes)
    return data


def oncall_settings(**changes: Any) -> OncallSettings:
    return OncallSettings.model_validate(oncall_data(**changes))
