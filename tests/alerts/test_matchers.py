"""Matchers read as Alertmanager reads them: in a value only \\\\, \\" and \\n are escapes, any
other backslash stays, so `instance=~"web-\\d+"` is the regex it looks like, in the inventory's
routes and inhibition rules, in silences, and in what `export prometheus` hands Alertmanager."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from opsplane.alerts import service
from opsplane.alerts.cli import silence_app
from opsplane.alerts.inhibition import inhibitions
from opsplane.alerts.matchers import LABEL_NAME, Matcher, MatchOp, parse_matcher
from opsplane.alerts.routing import build_tree, match_routes
from opsplane.config import loads
from opsplane.store import Store
from tests.alerts.factories import alert

WEB_DIGITS = r'instance=~"web-\d+"'


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (WEB_DIGITS, r"web-\d+"),
        (r'path="C:\\temp"', "C:\\temp"),
        (r'summary="say \"hi\""', 'say "hi"'),
        (r'summary="two\nlines"', "two\nlines"),
        ('summary="a real\nline feed"', "a real\nline feed"),
        (r'path="C:\temp\new"', "C:\\temp\n" + "ew"),  # \n is an escape even there, as in Alertmanager
        (r'path="C:\\temp\\new"', "C:\\temp\\new"),
        (r"instance=~web-\d+", r"web-\d+"),  # unquoted values read the same way
        (r"path=C:\\", "C:\\"),
        (r"path=C:\ ", "C:\\"),  # a backslash at the very end of an unquoted value is itself
        (r'quote=a\"b', 'a"b'),
        ('empty=""', ""),
        ("empty=", ""),
    ],
)
def test_only_backslash_quote_and_n_are_escapes_and_other_backslashes_are_kept(text: str, value: str) -> None:
    assert parse_matcher(text).value == value


def test_a_regex_with_a_backslash_class_matches_what_it_says() -> None:
    matcher = parse_matcher(WEB_DIGITS)
    assert matcher.matches({"instance": "web-12"})
    assert not matcher.matches({"instance": "web-d"})
    assert not matcher.matches({"instance": "web-dd"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (r'path="C:\"', r"closing quote .* escaped"),
        ('x="open', "does not close"),
        ('x="', "does not close"),
        ('x=a"b', "unescaped double quote"),
        ('x="a"b"', "unescaped double quote"),
        ('x=""b', "unescaped double quote"),
    ],
)
def test_a_lone_closing_backslash_and_unbalanced_quotes_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_matcher(text)


_NAMES = st.from_regex(LABEL_NAME, fullmatch=True)
_VALUES = st.text(st.characters(codec="utf-8"))
_TRICKY = st.text(st.sampled_from(['\\', '"', "n", "\n", " ", "\t", "é", "=", "~", ","]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(name=_NAMES, op=st.sampled_from(MatchOp), value=st.one_of(_VALUES, _TRICKY))
def test_a_matcher_written_out_reads_back_as_itself(name: str, op: MatchOp, value: str) -> None:
    if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
        value = value if _compiles(value) else re.escape(value)
    matcher = Matcher(name, op, value)
    assert parse_matcher(str(matcher)) == matcher


@settings(max_examples=200)
@given(text=st.text(st.sampled_from(['\\', '"', "n", "a", " "]), max_size=12))
def test_any_value_is_read_or_refused_with_a_value_error(text: str) -> None:
    try:
        matcher = parse_matcher(f"label={text}")
    except ValueError:
        return
    assert parse_matcher(str(matcher)) == matcher


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


INVENTORY = r"""
platform: {name: shop}
alerting:
  route:
    receiver: default
    routes:
      - matchers: ['instance=~"web-\d+"']
        receiver: web
  receivers: {default: {}, web: {}}
  inhibit_rules:
    - source_matchers: [alertname="NodeDown"]
      target_matchers: [instance=~"web-\d+", 'severity="P2"']
"""


def test_a_route_and_an_inhibition_rule_from_the_inventory_match_web_12() -> None:
    settings_ = loads(INVENTORY).alerting
    (web,) = match_routes(build_tree(settings_.route), {"instance": "web-12"})
    assert web.receiver == "web"
    (other,) = match_routes(build_tree(settings_.route), {"instance": "web-d"})
    assert other.receiver == "default"
    node = alert("NodeDown", severity="P1", instance="host-1")
    slow = alert("SlowRequests", severity="P2", instance="web-12")
    unrelated = alert("SlowRequests", severity="P2", instance="db-1")
    found = inhibitions([node, slow, unrelated], settings_.inhibit_rules)
    assert set(found) == {slow.fingerprint}


def test_a_silence_added_from_the_command_line_keeps_its_backslashes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/opsplane.db"
    result = CliRunner().invoke(silence_app, ["add", WEB_DIGITS, "-m", "web pool rebuild", "--json"],
                                env={"OPSPLANE_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["matchers"] == [WEB_DIGITS]
    now = datetime.now(UTC)
    with Store.open(url).session() as session:
        (silence,) = service.get_silences(session, now=now)
    assert silence.mutes({"instance": "web-12"}, now)
    assert not silence.mutes({"instance": "web-d"}, now)


# Alertmanager's own reading, through amtool: a route with each matcher, and an alert whose
# label is written by opsplane (amtool reads the label arguments with the same parser).
DIFFERENTIAL = [
    (WEB_DIGITS, "web-12"), (WEB_DIGITS, "web-d"),
    (r'path="C:\temp"', r"C:\temp"), (r'path="C:\temp"', "C:\temp"),
    (r'path="C:\\temp"', r"C:\temp"), (r'path="C:\\temp"', r"C:\\temp"),
    (r'path="C:\temp\new"', "C:\\temp\new"), (r'path="C:\temp\new"', r"C:\temp\new"),
    (r'say="\"hi\""', '"hi"'), (r'say="two\nlines"', "two\nlines"), (r'say="two\nlines"', r"two\nlines"),
    ('say="a real\nline feed"', "a real\nline feed"), ('who="José"', "José"),
    (r"path=C:\\", "C:\\"), (r"path=C:\ ", "C:\\"), (r'say=a\"b', 'a"b'),
    (r'instance!~"web-\d+|db-\w+"', "db-1"), (r'instance!~"web-\d+|db-\w+"', "cache-1"),
]
REFUSED = [r'path="C:\"', 'x="open', 'x=a"b', 'x="a"b"']


def _amtool() -> str:
    found = shutil.which("amtool")
    if found is None:
        pytest.skip("amtool is not installed (Debian package prometheus-alertmanager)")
    return found


def _alertmanager_file(tmp_path: Path, matcher: str) -> Path:
    config = {"route": {"receiver": "miss", "routes": [{"matchers": [matcher], "receiver": "hit"}]},
              "receivers": [{"name": "miss"}, {"name": "hit"}]}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("text", "value"), DIFFERENTIAL)
def test_matchers_match_what_they_match_in_alertmanager(tmp_path: Path, text: str, value: str) -> None:
    matcher = parse_matcher(text)
    label = str(Matcher(matcher.name, MatchOp.EQUAL, value))
    for written in (text, str(matcher)):  # as the operator wrote it, and as opsplane exports it
        done = subprocess.run([_amtool(), "config", "routes", "test",
                               f"--config.file={_alertmanager_file(tmp_path, written)}", label],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (done.stdout.strip() == "hit") is matcher.matches({matcher.name: value}), (written, value)


@pytest.mark.parametrize("text", REFUSED)
def test_matchers_alertmanager_refuses_are_refused(tmp_path: Path, text: str) -> None:
    done = subprocess.run([_amtool(), "check-config", str(_alertmanager_file(tmp_path, text))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "double quote" in done.stdout + done.stderr
    with pytest.raises(ValueError):
        parse_matcher(text)
