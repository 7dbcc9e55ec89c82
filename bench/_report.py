"""Results of the probe benchmark, the targets they are held to, and how they are shown:
a table for the terminal and a Markdown section for docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# What opsplane is held to (see docs/benchmarks.md).
CPU_EFFICIENCY_FACTOR = 2.0  # probes per CPU-second, against the blackbox exporter
LATENESS_TARGETS = 1000
LATENESS_P99_SECONDS = 0.1
RSS_TARGETS = 10000
RSS_LIMIT_MB = 150.0
KEPT_SCHEDULE = 0.98  # a prober keeps up when it completes this share of the asked rate


@dataclass
class ProberRun:
    """One prober at one target count, over the measurement window."""

    prober: str  # "opsplane" or "blackbox"
    targets: int
    window: float  # seconds
    expected_rate: float  # probes per second the schedule asks for
    probes: int  # probes completed in the window
    ok: int
    failed: int
    cpu_seconds: float  # user + system of the prober process, in the window
    cpu_user_seconds: float
    cpu_system_seconds: float
    peak_rss_mb: float  # VmHWM, in 10^6 bytes
    probes_per_second: float = 0.0
    probes_per_cpu_second: float | None = None
    cpu_percent: float = 0.0  # of one core
    lateness_p50_ms: float | None = None
    lateness_p99_ms: float | None = None
    started_within_100ms: float | None = None  # share of the window's probes
    skipped: int = 0
    state_changes: int = 0  # state-change events written during the window
    ready_seconds: float = 0.0  # from start until it answered
    exit_code: int | None = None
    stop_seconds: float | None = None
    stopped_event: bool | None = None  # opsplane recorded control_plane.stopped
    driver: dict[str, float | int | None] = field(default_factory=dict)
    failure_examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.probes_per_second = self.probes / self.window if self.window else 0.0
        self.cpu_percent = 100 * self.cpu_seconds / self.window if self.window else 0.0
        if self.cpu_seconds > 0:
            self.probes_per_cpu_second = self.probes / self.cpu_seconds


@dataclass(frozen=True)
class Verdict:
    """One target: what is asked, whether it is met (None: not measured), and the numbers."""

    target: str
    met: bool | None
    detail: str


@dataclass
class Report:
    date: str
    command: str
    machine: dict[str, object]
    versions: dict[str, str]
    interval_seconds: float
    warmup_seconds: float
    duration_seconds: float
    target_server: str
    runs: list[ProberRun]
    verdicts: list[Verdict]


def verdicts(runs: Sequence[ProberRun]) -> list[Verdict]:
    """The three targets, then the sanity checks every run must pass to count at all."""
    ours = {r.targets: r for r in runs if r.prober == "opsplane"}
    theirs = {r.targets: r for r in runs if r.prober == "blackbox"}
    found: list[Verdict] = []
    for count in sorted(ours.keys() & theirs.keys()):
        a, b = ours[count].probes_per_cpu_second, theirs[count].probes_per_cpu_second
        name = (f"opsplane >= {CPU_EFFICIENCY_FACTOR:g}x blackbox's probes per CPU-second "
                f"at {count:,} targets")
        if a is None or b is None:
            found.append(Verdict(name, None, "no CPU time measured"))
        else:
            found.append(Verdict(name, a >= CPU_EFFICIENCY_FACTOR * b,
                                 f"{a / b:.2f}x ({a:,.0f} vs {b:,.0f})"))
    name = f"opsplane p99 lateness under {LATENESS_P99_SECONDS * 1000:.0f} ms at " \
           f"{LATENESS_TARGETS:,} targets"
    run = ours.get(LATENESS_TARGETS)
    if run is None or run.started_within_100ms is None:
        found.append(Verdict(name, None, "not measured"))
    else:
        # The histogram has a bucket bound at exactly 100 ms, so "99% at or below it" is
        # read from the counts, not from the interpolation.
        found.append(Verdict(name, run.started_within_100ms >= 0.99,
                             f"{run.started_within_100ms:.2%} started within 100 ms; "
                             f"p99 ~ {_ms(run.lateness_p99_ms)} (interpolated)"))
    name = f"opsplane peak RSS under {RSS_LIMIT_MB:.0f} MB at {RSS_TARGETS:,} targets"
    run = ours.get(RSS_TARGETS)
    found.append(Verdict(name, None, "not measured") if run is None else
                 Verdict(name, run.peak_rss_mb < RSS_LIMIT_MB, f"VmHWM {run.peak_rss_mb:.0f} MB"))
    for run in runs:
        who = f"{run.prober} at {run.targets:,} targets"
        kept = run.probes >= KEPT_SCHEDULE * run.expected_rate * run.window
        found.append(Verdict(f"{who}: keeps the schedule", kept,
                             f"{run.probes_per_second:,.1f}/s of {run.expected_rate:,.0f}/s"))
        found.append(Verdict(f"{who}: every probe succeeds", run.failed == 0,
                             f"{run.failed:,} of {run.probes:,} failed"
                             + (f" ({'; '.join(run.failure_examples)})"
                                if run.failure_examples else "")))
        if run.prober == "opsplane":
            shutdown = "its shutdown ran to the end" if run.stopped_event else \
                "no control_plane.stopped event"
            found.append(Verdict(f"{who}: exits 0 within 10 s of SIGTERM", run.exit_code == 0,
                                 f"exit status {run.exit_code} after {run.stop_seconds or 0:.1f} s"
                                 f", {shutdown}"))
    return found


# --- rendering -------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _per_cpu(run: ProberRun) -> str:
    return "-" if run.probes_per_cpu_second is None else f"{run.probes_per_cpu_second:,.0f}"


def _cpu(run: ProberRun) -> str:
    user = 100 * run.cpu_user_seconds / run.window if run.window else 0.0
    system = 100 * run.cpu_system_seconds / run.window if run.window else 0.0
    return f"{run.cpu_percent:.1f}% ({user:.0f} user + {system:.0f} sys)"


def _mark(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def _name(run: ProberRun) -> str:
    return "opsplane" if run.prober == "opsplane" else "blackbox exporter"


def table(report: Report) -> str:
    """The results as an aligned plain-text table, the targets, and the notes."""
    header = ["targets", "prober", "probes/s", "asked/s", "CPU of one core", "probes/CPU-s",
              "late p50", "late p99", "peak RSS", "failed"]
    rows = [header]
    for run in report.runs:
        rows.append([f"{run.targets:,}", _name(run), f"{run.probes_per_second:,.1f}",
                     f"{run.expected_rate:,.0f}", _cpu(run), _per_cpu(run),
                     _ms(run.lateness_p50_ms), _ms(run.lateness_p99_ms),
                     f"{run.peak_rss_mb:.0f} MB", f"{run.failed:,}/{run.probes:,}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"Probes: every target every {report.interval_seconds:g} s; "
             f"{report.warmup_seconds:g} s warm-up, then {report.duration_seconds:g} s measured",
             ""]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    lines.append("")
    for verdict in report.verdicts:
        lines.append(f"[{_mark(verdict.met):>12}] {verdict.target}: {verdict.detail}")
    notes = _notes(report)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _notes(report: Report) -> list[str]:
    notes = []
    for run in report.runs:
        who = f"{_name(run)} at {run.targets:,} targets"
        if run.driver:
            d = run.driver
            notes.append(
                f"{who}: the driver sent {d['sent_per_second']:,.1f} requests/s, "
                f"{_ms(_float(d['send_lateness_p50_ms']))} / "
                f"{_ms(_float(d['send_lateness_p99_ms']))} late (p50 / p99), "
                f"using {d['cpu_percent']:.0f}% of a core itself (not counted)")
        if run.state_changes:
            notes.append(f"{who}: {run.state_changes:,} state-change events written during the "
                         f"window (the first results of every check are state changes)")
        if run.skipped:
            notes.append(f"{who}: {run.skipped:,} slots skipped (previous run still going)")
        notes += [f"{who}: {note}" for note in run.notes]
    return notes


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def markdown(report: Report) -> str:
    """The "Probes" section of docs/benchmarks.md for this run."""
    m = report.machine
    lines = [
        "## Probes",
        "",
        f"Measured on {report.date}: {m['cpus']} CPU ({m['cpu_model']}), "
        f"{float(str(m['memory_gib'])):.0f} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"opsplane {report.versions['opsplane']}, "
        f"blackbox_exporter {report.versions['blackbox_exporter']}; "
        f"targets served by {report.target_server} on the same machine.",
        "",
        "```",
        report.command,
        "```",
        "",
        f"Every target probed every {report.interval_seconds:g} s; "
        f"{report.warmup_seconds:g} s warm-up, then {report.duration_seconds:g} s measured. "
        "CPU is user + system time of the prober process alone, as a share of one core.",
        "",
        "| Targets | Prober | Probes/s (asked) | CPU | Probes per CPU-second "
        "| Lateness p50 / p99 | Peak RSS | Failed |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in report.runs:
        late = "-" if run.lateness_p50_ms is None else \
            f"{_ms(run.lateness_p50_ms)} / {_ms(run.lateness_p99_ms)}"
        lines.append(
            f"| {run.targets:,} | {_name(run)} | {run.probes_per_second:,.1f} "
            f"({run.expected_rate:,.0f}) | {_cpu(run)} | {_per_cpu(run)} | {late} "
            f"| {run.peak_rss_mb:.0f} MB | {run.failed:,} of {run.probes:,} |")
    lines += ["", "| Target | Result | Figures |", "| --- | --- | --- |"]
    for verdict in report.verdicts:
        lines.append(f"| {verdict.target} | {_mark(verdict.met)} | {verdict.detail} |")
    notes = _notes(report)
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)
