"""The cache report's judgement, a pure function of what was read from Redis.

The manual's thresholds: a hit ratio below 80 % warns and below 50 % is critical (its KPI
table), memory above 80 % of maxmemory warns and above 90 % is critical, a fragmentation ratio
above 1.5 warns, and evictions warn unless the eviction policy is one meant for a cache
(`allkeys-*`: Redis is expected to drop the least used keys). Counters (hits, misses,
evictions, expired keys) are Redis's own since it started or since `CONFIG RESETSTAT`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from opsplane.cache.models import CacheFacts, KeyspaceDb
from opsplane.reports.models import Finding, Report, Severity
from opsplane.units import format_value

# Below this many lookups the hit ratio says more about a quiet cache than a cold one.
MIN_LOOKUPS = 100
# Below this much memory, allocator overhead makes the fragmentation ratio meaningless.
MIN_BYTES_FOR_FRAGMENTATION = 16 * 2**20
CACHE_POLICIES = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


@dataclass(frozen=True)
class Limits:
    """The thresholds the report judges by."""

    hit_ratio_warning: float = 0.80
    hit_ratio_critical: float = 0.50
    memory_warning: float = 0.80
    memory_critical: float = 0.90
    fragmentation_warning: float = 1.5
    big_key_bytes: int = 1 * 2**20


def number(info: dict[str, str], name: str) -> int:
    with contextlib.suppress(ValueError, TypeError):
        return int(info.get(name, "0"))
    return 0


def ratio(info: dict[str, str], name: str) -> float | None:
    with contextlib.suppress(ValueError, TypeError):
        return float(info[name])
    return None


def parse_keyspace(info: dict[str, str]) -> tuple[KeyspaceDb, ...]:
    """INFO's `db0:keys=3,expires=1,avg_ttl=5000` lines as values, by database number."""
    found = []
    for name, value in info.items():
        if not (name.startswith("db") and name[2:].isdigit()):
            continue
        fields = dict(part.partition("=")[::2] for part in value.split(","))
        with contextlib.suppress(ValueError):
            found.append(KeyspaceDb(int(name[2:]), int(fields.get("keys", 0)), int(fields.get("expires", 0)),
                                    int(fields.get("avg_ttl", 0))))
    return tuple(sorted(found, key=lambda db: db.db))


def figures(facts: CacheFacts) -> dict[str, Any]:
    """The report's figures for one cache."""
    info = facts.info
    used, maxmemory = number(info, "used_memory"), number(info, "maxmemory")
    hits, misses = number(info, "keyspace_hits"), number(info, "keyspace_misses")
    return {
        "cache": facts.name, "address": facts.address, "version": info.get("redis_version"),
        "used_memory": used, "maxmemory": maxmemory or None,
        "memory_ratio": round(used / maxmemory, 4) if maxmemory else None,
        "maxmemory_policy": info.get("maxmemory_policy"),
        "fragmentation_ratio": ratio(info, "mem_fragmentation_ratio"),
        "keyspace_hits": hits, "keyspace_misses": misses,
        "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "evicted_keys": number(info, "evicted_keys"), "expired_keys": number(info, "expired_keys"),
        "uptime_seconds": number(info, "uptime_in_seconds"),
        "keyspace": [db.as_dict() for db in facts.keyspace],
        "sample": facts.sample.as_dict() if facts.sample else None,
    }


def judge(facts: CacheFacts, limits: Limits = Limits()) -> list[Finding]:
    """What is wrong (or worth knowing) with one cache."""
    info, name = facts.info, facts.name
    found: list[Finding] = []
    used, maxmemory = number(info, "used_memory"), number(info, "maxmemory")
    if maxmemory:
        share = used / maxmemory
        level: Severity | None = "critical" if share > limits.memory_critical else \
            "warning" if share > limits.memory_warning else None
        if level:
            above = limits.memory_critical if level == "critical" else limits.memory_warning
            found.append(Finding(level, name, f"memory {share:.0%} of maxmemory "
                                 f"{format_value(maxmemory, 'bytes')} ({level} above {above:.0%})",
                                 {"used_memory": used, "maxmemory": maxmemory}))
    else:
        found.append(Finding("info", name, f"no maxmemory: it may grow to {format_value(used, 'bytes')} "
                             "and beyond until the host runs out of memory", {"used_memory": used}))
    hits, misses = number(info, "keyspace_hits"), number(info, "keyspace_misses")
    if hits + misses >= MIN_LOOKUPS:
        hit_ratio = hits / (hits + misses)
        low: Severity | None = "critical" if hit_ratio < limits.hit_ratio_critical else \
            "warning" if hit_ratio < limits.hit_ratio_warning else None
        if low:
            at = limits.hit_ratio_critical if low == "critical" else limits.hit_ratio_warning
            found.append(Finding(low, name, f"hit ratio {hit_ratio:.0%} ({hits} hits, {misses} misses; "
                                 f"{low} below {at:.0%})", {"hit_ratio": round(hit_ratio, 4)}))
    fragmentation = ratio(info, "mem_fragmentation_ratio")
    if (fragmentation is not None and fragmentation > limits.fragmentation_warning
            and used >= MIN_BYTES_FOR_FRAGMENTATION):
        found.append(Finding("warning", name, f"memory fragmentation ratio {fragmentation:.2f} (above "
                             f"{limits.fragmentation_warning:g}): Redis holds more memory than its data "
                             "needs; activedefrag or a restart gives it back",
                             {"fragmentation_ratio": fragmentation}))
    evicted = number(info, "evicted_keys")
    policy = info.get("maxmemory_policy", "")
    if evicted:
        meant = policy in CACHE_POLICIES
        found.append(Finding("info" if meant else "warning", name,
                             f"{evicted} keys evicted under maxmemory-policy {policy or '?'}"
                             + ("" if meant else ": a policy not meant to drop any key it likes; keys "
                                "that were to live until their expiry were dropped, so raise maxmemory "
                                "or choose allkeys-lru if this is a cache"),
                             {"evicted_keys": evicted, "maxmemory_policy": policy}))
    if facts.sample is not None:
        for key in facts.sample.biggest:
            if key.bytes >= limits.big_key_bytes:
                found.append(Finding("warning", name, f"big key {key.key!r} in db {key.db} ({key.type}, "
                                     f"{format_value(key.bytes, 'bytes')}): one key this large blocks "
                                     "Redis while it is read, written or deleted", key.as_dict()))
    return found


def markdown(rows: list[dict[str, Any]], findings: list[Finding]) -> str:
    lines = ["# Cache report", ""]
    for row in rows:
        lines.append(f"## {row['cache']} ({row.get('address') or 'not read'})")
        lines.append("")
        lines += [f"- {label}: {value}" for label, value in describe(row)]
        lines.append("")
    if findings:
        lines += ["## Findings", ""]
        lines += [f"- **{f.severity}** {f.subject}: {f.what}" for f in findings]
    return "\n".join(lines) + "\n"


def describe(row: dict[str, Any]) -> list[tuple[str, str]]:
    """A cache's figures as (label, text) for a person."""
    if row.get("error"):
        return [("unreachable", row["error"])]
    memory = format_value(row["used_memory"], "bytes")
    if row["maxmemory"]:
        memory += f" of {format_value(row['maxmemory'], 'bytes')} ({row['memory_ratio']:.0%})"
    hits = "no lookups yet" if row["hit_ratio"] is None else \
        f"{row['hit_ratio']:.1%} ({row['keyspace_hits']} hits, {row['keyspace_misses']} misses)"
    keyspace = ", ".join(f"db{db['db']}: {db['keys']} keys ({db['expires']} with expiry)"
                         for db in row["keyspace"]) or "empty"
    said = [("memory", memory), ("policy", str(row["maxmemory_policy"])),
            ("fragmentation", "-" if row["fragmentation_ratio"] is None
             else f"{row['fragmentation_ratio']:.2f}"),
            ("hit ratio", hits), ("evicted keys", str(row["evicted_keys"])),
            ("expired keys", str(row["expired_keys"])), ("keyspace", keyspace)]
    sample = row.get("sample")
    if sample:
        looked = sum(sample["looked_at"].values())
        biggest = ", ".join(f"{k['key']} (db{k['db']}, {k['type']}, {format_value(k['bytes'], 'bytes')})"
                            for k in sample["biggest"][:5]) or "-"
        said.append((f"biggest keys (a sample of {looked} keys, at most {sample['sample_size']} per db)",
                     biggest))
    return said


def report(read: list[CacheFacts], unreachable: dict[str, str], limits: Limits = Limits()) -> Report:
    """The `cache-report` job's report over every cache read and every one that could not be."""
    rows = [figures(facts) for facts in read]
    findings = [finding for facts in read for finding in judge(facts, limits)]
    for name, reason in unreachable.items():
        rows.append({"cache": name, "error": reason})
        findings.append(Finding("critical", name, f"could not be read: {reason}"))
    names = [facts.name for facts in read] + list(unreachable)
    serious = [f for f in findings if f.severity != "info"]
    said = f"{len(serious)} finding{'s' if len(serious) != 1 else ''}" if serious else "nothing to fix"
    summary = f"{len(names)} cache{'s' if len(names) != 1 else ''} looked at: {said}"
    return Report(job="cache-report", subject=", ".join(names), summary=summary, findings=tuple(findings),
                  body={"caches": rows}, markdown=markdown(rows, findings),
                  failed=bool(unreachable) and not read)
