"""The inventory's `audit:` section: where the event log's signed archives go and how long
events stay at hand in the store and in archives (PCI DSS 10.5.1: a year kept, three months
at hand)."""

from __future__ import annotations

from pydantic import Field, model_validator

from opsplane.config.types import Duration, Strict

DAY = 86400.0


class AuditSettings(Strict):
    """Retention of the event log: present, the `audit-retention` job moves events older than
    `at_hand` into signed archives in `archive_dir` and deletes archives older than `keep`."""

    archive_dir: str = Field(description="Where the signed archive files are written; relative to the "
                             "inventory file's directory. Keep it on storage the auditors trust.")
    at_hand: Duration = Field(90 * DAY, description="How long events stay in the store, where "
                              "`opsplane events` and the dashboard read them; older ones are archived.")
    keep: Duration = Field(365 * DAY, description="How long archives are kept (by their newest event); "
                           "older archive files are deleted.")

    @model_validator(mode="after")
    def _keep_beyond_at_hand(self) -> AuditSettings:
        if self.keep < self.at_hand:
            raise ValueError("keep is shorter than at_hand: archives would be deleted before their events "
                             "leave the store")
        return self
