"""The cache report's judgement over INFO values: the manual's thresholds, each side of them."""

from __future__ import annotations

from opsplane.cache.analysis import figures, judge, parse_keyspace, report
from opsplane.cache.models import BigKey, CacheFacts, Sample

MiB = 2**20


def facts(sample: Sample | None = None, **info: object) -> CacheFacts:
    values = {"used_memory": "1000", "maxmemory": "0", "maxmemory_policy": "noeviction",
              "keyspace_hits": "0", "keyspace_misses": "0", "evicted_keys": "0",
              "mem_fragmentation_ratio": "1.1"}
    values.update({k: str(v) for k, v in info.items()})
    return CacheFacts("redis", "redis://127.0.0.1:1", values, parse_keyspace(values), sample)


def said(found: CacheFacts) -> list[tuple[str, str]]:
    return [(f.severity, f.what) for f in judge(found)]


def levels(found: CacheFacts, about: str) -> list[str]:
    return [s for s, w in said(found) if about in w]


def test_hit_ratio_warns_below_80_and_is_critical_below_50_per_the_kpi_table() -> None:
    assert not [s for s, _ in said(facts(keyspace_hits=80, keyspace_misses=20)) if s != "info"]
    warned = said(facts(keyspace_hits=79, keyspace_misses=21))
    assert ("warning", "hit ratio 79% (79 hits, 21 misses; warning below 80%)") in warned
    critical = said(facts(keyspace_hits=49, keyspace_misses=51))
    assert any(s == "critical" and w.startswith("hit ratio 49%") for s, w in critical)


def test_a_quiet_cache_is_not_judged_by_its_hit_ratio() -> None:
    assert not [w for _, w in said(facts(keyspace_hits=1, keyspace_misses=98)) if "hit ratio" in w]


def test_memory_warns_above_80_and_is_critical_above_90_percent_of_maxmemory() -> None:
    assert not [w for _, w in said(facts(used_memory=80 * MiB, maxmemory=100 * MiB)) if "memory" in w]
    assert levels(facts(used_memory=81 * MiB, maxmemory=100 * MiB), "memory") == ["warning"]
    assert levels(facts(used_memory=91 * MiB, maxmemory=100 * MiB), "memory") == ["critical"]


def test_no_maxmemory_is_said_but_not_a_warning() -> None:
    assert [(s, w.split(":")[0]) for s, w in said(facts())] == [("info", "no maxmemory")]


def test_fragmentation_above_one_and_a_half_warns_once_there_is_data_enough() -> None:
    big = {"used_memory": 64 * MiB, "maxmemory": 1024 * MiB}
    assert levels(facts(mem_fragmentation_ratio=1.6, **big), "fragmentation") == ["warning"]
    assert not [w for _, w in said(facts(mem_fragmentation_ratio=1.5, **big)) if "fragmentation" in w]
    # a few KiB of data: the allocator's overhead alone makes the ratio large
    assert not [w for _, w in said(facts(mem_fragmentation_ratio=9.0)) if "fragmentation" in w]


def test_evictions_warn_unless_the_policy_is_meant_to_evict_anything() -> None:
    volatile = said(facts(evicted_keys=12, maxmemory_policy="volatile-lru"))
    assert [s for s, w in volatile if "evicted" in w] == ["warning"]
    lru = said(facts(evicted_keys=12, maxmemory_policy="allkeys-lru"))
    assert [s for s, w in lru if "evicted" in w] == ["info"]


def test_a_sampled_key_of_a_mebibyte_or_more_is_a_big_key() -> None:
    sample = Sample(100, {0: 3}, (BigKey(0, "blob", "string", 2 * MiB), BigKey(0, "small", "string", 100)))
    found = said(facts(sample=sample))
    assert [w.split(" (")[0] for s, w in found if s == "warning"] == ["big key 'blob' in db 0"]


def test_keyspace_and_figures() -> None:
    found = facts(keyspace_hits=3, keyspace_misses=1, db0="keys=5,expires=2,avg_ttl=100",
                  db3="keys=1,expires=0,avg_ttl=0")
    row = figures(found)
    assert row["hit_ratio"] == 0.75
    assert row["keyspace"] == [{"db": 0, "keys": 5, "expires": 2, "avg_ttl_ms": 100},
                               {"db": 3, "keys": 1, "expires": 0, "avg_ttl_ms": 0}]


def test_the_report_is_critical_for_a_cache_it_could_not_read_and_failed_when_it_read_none() -> None:
    partly = report([facts()], {"sessions": "refused"})
    assert partly.outcome == "critical" and not partly.failed
    assert report([], {"sessions": "refused"}).outcome == "failed"
    assert report([facts()], {}).outcome == "ok"


def test_the_cache_events_read_as_sentences() -> None:
    from opsplane.events.summary import summarise

    assert summarise("cache.flushed", {"cache": "redis", "db": 0, "keys": 51}, outcome="success") == \
        "Flushed db 0 of cache redis: 51 keys deleted"
    assert summarise("cache.flushed", {"cache": "redis", "db": 2, "error": "refused",
                                       "reason": "runbook cache-issues, run 3"}, outcome="failure") == \
        "Flush of db 2 of cache redis failed (runbook cache-issues, run 3): refused"
    assert summarise("cache.warmed", {"cache": "redis", "keys": 21, "services": ["catalog"]},
                     outcome="success") == "Cache redis warmed by catalog: 21 keys loaded"
