"""The sign-in and traffic lines added up by client and judged: a brute force is critical and
named, a client sending most of the requests or mostly refused ones is a warning, ordinary
traffic finds nothing."""

from __future__ import annotations

from opsplane.security.logsignals import Limits, judge, tally
from opsplane.security.signals import report

PREFIX = "2026-12-06 10:00:00,000 shop.logins INFO "


def _logins(client: str, result: str, count: int, user: str = "alice") -> list[str]:
    return [f"{PREFIX}login result={result} user={user} client={client}"] * count


def _window(total: int, *clients: tuple[str, int, int]) -> list[str]:
    lines = [f"2026-12-06 10:01:00,000 shop.clients INFO traffic window=60s total={total} "
             f"addresses={len(clients)}"]
    lines += [f"2026-12-06 10:01:00,000 shop.clients INFO traffic client={c} requests={r} denied={d}"
              for c, r, d in clients]
    return lines


def test_one_client_with_many_failed_sign_ins_is_a_critical_finding_naming_it() -> None:
    lines = (_logins("203.0.113.9", "failed", 60, "alice") + _logins("203.0.113.9", "failed", 5, "root")
             + _logins("10.0.0.2", "ok", 40) + _logins("10.0.0.2", "failed", 2)
             + ["unrelated line", f"{PREFIX}login result=failed user=bob"])  # no client: not a sign-in line
    found = tally(lines)
    assert found.logins == {"failed": 67, "ok": 40}
    findings = judge(found, Limits(), window="24 h")
    critical = [f for f in findings if f.severity == "critical"]
    assert [f.subject for f in critical] == ["203.0.113.9"]
    assert "65 failed sign-ins" in critical[0].what and "alice, root" in critical[0].what
    assert "10.0.0.2" not in {f.subject for f in findings}  # two typos are no finding


def test_a_fifth_of_the_brute_force_threshold_is_a_warning() -> None:
    findings = judge(tally(_logins("198.51.100.4", "failed", 12)), Limits(brute_force_logins=50),
                     window="24 h")
    assert [(f.severity, f.subject) for f in findings] == [("warning", "198.51.100.4")]


def test_a_client_sending_most_requests_is_a_warning_once_there_are_enough_of_them() -> None:
    busy = _window(5000, ("192.0.2.50", 4000, 0), ("10.0.0.2", 600, 1)) + _window(1000, ("10.0.0.2", 900, 0))
    found = tally(busy)
    assert found.requests == 6000 and found.clients["10.0.0.2"].requests == 1500
    findings = judge(found, Limits(client_share=0.5, client_min_requests=1000), window="24 h")
    assert [(f.severity, f.subject) for f in findings] == [("warning", "192.0.2.50")]
    assert "67%" in findings[0].what
    # the host itself and the site's proxies are no clients: their share is not judged
    local = tally(_window(5000, ("127.0.0.1", 4000, 0), ("10.0.0.2", 1000, 0)))
    assert judge(local, Limits(client_share=0.5, client_min_requests=1000), window="24 h") == []
    proxied = Limits(client_share=0.5, client_min_requests=1000, share_exempt=("192.0.2.0/24",))
    assert judge(found, proxied, window="24 h") == []
    # below the minimum, one client is every request and that is fine (a quiet night)
    assert judge(tally(_window(300, ("10.0.0.2", 300, 0))), Limits(), window="24 h") == []


def test_a_client_whose_requests_are_mostly_refused_is_a_scan() -> None:
    found = tally(_window(2000, ("10.0.0.2", 900, 3), ("10.0.0.3", 800, 0), ("192.0.2.77", 300, 280)))
    findings = judge(found, Limits(), window="24 h")
    assert [(f.severity, f.subject) for f in findings] == [("warning", "192.0.2.77")]
    assert "280 of its 300" in findings[0].what


def test_the_report_lists_top_clients_and_failed_sign_in_sources_whatever_it_finds() -> None:
    found = tally(_window(100, ("10.0.0.2", 90, 0)) + _logins("10.0.0.3", "failed", 1))
    made = report(found, Limits(), services=["gateway"])
    assert made.outcome == "ok" and "no client stands out" in made.summary
    assert made.body["top_clients"][0]["client"] == "10.0.0.2"
    assert made.body["failed_login_sources"][0] == {
        "client": "10.0.0.3", "requests": 0, "denied": 0, "failed_logins": 1, "ok_logins": 0,
        "users_tried": ["alice"]}
    assert "| 10.0.0.2 | 90 | 0 | 0 |" in made.markdown
    empty = report(tally([]), Limits(), services=["gateway"])
    assert empty.outcome == "ok" and "no sign-in or traffic lines" in empty.summary
