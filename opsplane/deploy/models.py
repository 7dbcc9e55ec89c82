"""The inventory's `deploy:` section: strategies, analysis, rollback criteria, windows and the
releases each service may be deployed to, with the operations manual's values as defaults."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from opsplane.config.types import Duration, Ratio, Strict
from opsplane.deploy.windows import WindowPolicy, default_policies

STRATEGIES = ("rolling", "blue-green", "canary")
Strategy = Literal["rolling", "blue-green", "canary"]
Release = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
Percent = Annotated[float, Field(gt=0, le=100)]


class AnalysisSettings(Strict):
    """How a canary is judged against the stable release during one step."""

    confidence: float = Field(
        0.99, gt=0.5, lt=1, description="Confidence of a verdict (default 0.99): of analyses of two "
        "equal versions at most 1 - confidence fail, however often a step is looked at.",
    )
    min_requests: int = Field(
        200, ge=1, description="Requests each version must have answered before any verdict (default 200).",
    )
    min_intervals: int = Field(
        6, ge=1, description="Intervals observed before any verdict (default 6: a minute of 10 s intervals).",
    )
    max_error_ratio: Ratio = Field(
        0.05, description="Absolute limit: a canary significantly above this error ratio fails even when "
        "the stable release is as bad (default 5%).",
    )
    max_latency_factor: float = Field(
        2.0, gt=1, description="A canary whose p95 is significantly above this many times the stable "
        "p95 fails (default 2.0).",
    )
    error_margin: Ratio = Field(
        0.01, gt=0, lt=1, description="Smallest rise of the error ratio worth acting on, in points "
        "(default 1%): a canary worse by more fails, one shown to be worse by less passes.",
    )
    latency_margin: Ratio = Field(
        0.2, gt=0, description="Smallest relative slowing worth acting on (default 20%): a canary slower "
        "by more fails, one shown to be slower by less passes.",
    )
    power: Ratio = Field(
        0.8, gt=0, lt=1, description="Chance of telling a margin's worsening from none that the traffic "
        "estimate plans for when a verdict says how many requests are needed (default 80%).",
    )
    early_share: Ratio = Field(
        0.5, gt=0, lt=1, description="Share of the error budget (1 - confidence) that the looks before "
        "the final one may spend on early verdicts (default 50%).",
    )


class CanarySettings(Strict):
    steps: list[Percent] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="The candidate's share of requests at each step, rising, ending at 100; the "
        "candidate is analysed against the stable release at every step below 100.",
    )
    step_duration: Duration = Field(
        120.0, description="How long one step's analysis may take before its verdict is due; a clear "
        "verdict comes earlier.")
    interval: Duration = Field(
        10.0, description="The analysis interval: each version's requests, errors and latencies are "
        "compared per interval of this length.")
    auto_promote: bool = Field(
        True, description="Go to the next step on a passing verdict; false: wait for "
        "`opsplane deploy promote` at each step.")
    inconclusive: Literal["extend", "pause"] = Field(
        "extend", description="What a step without enough evidence does: `extend` it (up to "
        "`max_extensions` more step durations, then pause), or `pause` for a person at once. It never "
        "promotes and never rolls back.")
    max_extensions: int = Field(2, ge=0, le=20,
                                description="Extensions of an inconclusive step before it pauses.")

    @model_validator(mode="after")
    def _rising_to_100(self) -> CanarySettings:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps must rise, e.g. [5, 25, 50, 100]")
        if not self.steps or self.steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return self


class BlueGreenSettings(Strict):
    keep_previous: Duration = Field(
        300.0, description="How long the previous release keeps running after the switch, for an "
        "instant rollback, while the rollback criteria are watched.")


class RollbackCriteria(Strict):
    max_error_ratio: float = Field(0.05, gt=0, le=1, description="The new release's share of 5xx answers "
                                   "above which it is rolled back (the manual: error rate > 5 %).")
    max_latency_factor: float = Field(2.0, gt=1, description="Roll back when the new release's p95 is "
                                      "more than this many times the stable release's.")
    p0_alert_window: Duration = Field(1800.0, description="A P0 alert for the service during the deploy "
                                      "or this long after it rolls it back.")
    failing_checks: bool = Field(True, description="Roll back when the service's health checks fail "
                                 "on the new release.")
    incident_severity: Literal["P0", "P1", "P2", "P3"] = Field(
        "P1", description="The severity of the incident a rollback by criteria opens or joins.")


class SmokeTest(Strict):
    name: str = Field(description="What the test is called in the deploy's record.")
    path: str | None = Field(None, description="An HTTP GET of this path on each new instance.")
    expect_status: int = Field(200, ge=100, le=599, description="The status the path must answer.")
    contains: str | None = Field(None, description="Text the answer's body must contain.")
    argv: list[str] | None = Field(None, min_length=1, description="A command (no shell) that must exit 0; "
                                   "{host}, {port} and {version} are replaced.")

    @model_validator(mode="after")
    def _one_kind(self) -> SmokeTest:
        if (self.path is None) == (self.argv is None):
            raise ValueError("give either path (an HTTP check) or argv (a command)")
        return self


class ServiceDeploy(Strict):
    strategy: Strategy | None = Field(None, description="Default strategy for this service.")
    releases: list[Release] | None = Field(
        None, description="The releases that are built and may be deployed.")
    releases_command: list[str] | None = Field(
        None, min_length=1, description="A command (no shell) printing the built releases, one per line "
        "(the first word of each); used when `releases` is unset.")
    irreversible: list[Release] = Field(
        default_factory=list, description="Releases whose schema change cannot be undone: a rollback "
        "moves traffic back and pauses for a person instead of going further.")
    smoke: list[SmokeTest] = Field(default_factory=list, description="Run against new instances before "
                                   "they get traffic.")


class DeploySettings(Strict):
    strategy: Strategy = Field("rolling", description="The strategy when neither the command nor the "
                               "service names one.")
    health_timeout: Duration = Field(60.0, description="How long a new instance may take to answer its "
                                     "port and pass its health checks.")
    healthy_for: Duration = Field(
        10.0, description="How long the new release's extra instances must keep running once they pass "
        "their health checks, and pass them again, before they get any requests: a release that crashes "
        "soon after it starts is rolled back before a request reaches it.")
    canary: CanarySettings = Field(default_factory=CanarySettings)
    blue_green: BlueGreenSettings = Field(default_factory=BlueGreenSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    rollback: RollbackCriteria = Field(default_factory=RollbackCriteria)
    windows: dict[str, WindowPolicy] = Field(
        default_factory=default_policies,
        description="Deployment windows, freezes and approvals per environment; an environment not "
        "listed is unrestricted.")
    services: dict[str, ServiceDeploy] = Field(default_factory=dict, description="Per service.")

    def for_service(self, name: str) -> ServiceDeploy:
        return self.services.get(name) or ServiceDeploy()
