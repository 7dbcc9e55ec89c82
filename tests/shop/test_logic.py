"""The pure parts: settings, fault plans, the error window, payment decisions, percentiles."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from shop.cli import app
from shop.faults import FaultPlan, RouteFaults, resolve
from shop.payments import decide
from shop.settings import ShopConfigError, load_settings
from shop.telemetry import ErrorWindow
from shop.traffic import mean_session_length, parse_mix, plan_session
from shop.traffic_report import percentile


def test_settings_turn_a_plain_postgresql_url_into_a_psycopg_one() -> None:
    settings = load_settings({"SHOP_DATABASE_URL": "postgresql://shop:secret@127.0.0.1:5999/shop"})

    assert settings.database_url == "postgresql+psycopg://shop:secret@127.0.0.1:5999/shop"
    assert settings.payment_success_rate == 0.98 and settings.version == "v1" and settings.admin_token is None


def test_settings_default_to_sqlite_under_the_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings({"SHOP_DATA_DIR": str(tmp_path)})

    assert settings.database_url == f"sqlite:///{tmp_path}/shop.db"
    assert settings.redis_url is None


@pytest.mark.parametrize(("name", "raw", "needle"), [
    ("SHOP_DATABASE_URL", "mysql://u:topsecret@h/db", "not supported"),
    ("SHOP_PAYMENT_SUCCESS_RATE", "1.5", "between 0 and 1"),
    ("SHOP_PAYMENT_SUCCESS_RATE", "most", "not a number"),
    ("SHOP_FAULTS", "{oops", "not valid JSON"),
    ("SHOP_FAULTS", "[]", "JSON object"),
    ("SHOP_SEED", "x", "not an integer"),
    ("SHOP_ORDERS_URL", "orders:8202", "http://"),
])
def test_bad_settings_name_the_variable(name: str, raw: str, needle: str) -> None:
    with pytest.raises(ShopConfigError, match=name) as caught:
        load_settings({name: raw})
    assert needle in str(caught.value)
    assert "topsecret" not in str(caught.value)


def test_all_route_faults_spare_the_operational_routes_unless_named() -> None:
    plan = FaultPlan(error_ratio={"*": 0.5}, latency_ms={"*": 100, "/metrics": 20}, hang=["*"])

    assert resolve(plan, "/charges") == RouteFaults(0.5, 0.1, True)
    assert resolve(plan, "/health") is None
    assert resolve(plan, "/metrics") == RouteFaults(0.0, 0.02, False)
    assert resolve(FaultPlan(), "/charges") is None


def test_a_plan_names_its_unknown_routes_and_dependencies() -> None:
    plan = FaultPlan(error_ratio={"/charge": 0.1}, hang=["*"], outages=["cache"])

    problems = plan.problems({"/charges", "/health"}, ["database"])

    assert len(problems) == 2
    assert "'/charge'" in problems[0] and "'cache'" in problems[1]


def test_error_window_counts_only_the_last_minute() -> None:
    now = [1000.0]
    window = ErrorWindow(clock=lambda: now[0])
    for _ in range(9):
        window.record(False)
    window.record(True)
    assert window.ratio() == pytest.approx(0.1)

    now[0] += 30
    for _ in range(10):
        window.record(True)
    assert window.ratio() == pytest.approx(11 / 20)

    now[0] += 31  # the first second has left the window
    assert window.ratio() == 1.0
    now[0] += 60
    assert window.ratio() == 0.0


def test_payment_decisions_follow_the_configured_rates() -> None:
    rng = random.Random(1)
    outcomes = [decide(rng, 0.9, 0.02)[0] for _ in range(10_000)]

    assert outcomes.count("error") == pytest.approx(200, abs=60)
    assert outcomes.count("succeeded") == pytest.approx(0.98 * 0.9 * 10_000, abs=150)
    assert {decide(rng, 0.0, 0.0) for _ in range(200)} <= {("declined", r) for r in (
        "insufficient_funds", "card_declined", "expired_card", "incorrect_cvc", "do_not_honor")}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 99) == 99
    assert percentile([], 95) == 0.0 and percentile([7.0], 99) == 7.0


def test_sessions_mostly_look_around_and_some_buy() -> None:
    rng = random.Random(2)
    plans = [plan_session(rng) for _ in range(2000)]
    buying = sum("checkout" in plan for plan in plans) / len(plans)

    assert 0.15 < buying < 0.25
    assert all(plan.index("cart") < plan.index("checkout") for plan in plans if "checkout" in plan)
    assert 3 < mean_session_length(2) < 5


def test_a_session_mix_is_parsed_and_checked() -> None:
    assert parse_mix("browse=1, buy=3") == {"browse": 1.0, "buy": 3.0}
    problems = (("shop=1", "unknown session kind"), ("buy=lots", "not a number"), ("buy=0", "not all 0"))
    for bad, needle in problems:
        with pytest.raises(ValueError, match=needle):
            parse_mix(bad)
    rng = random.Random(4)
    assert all("checkout" in plan_session(rng, {"buy": 1}) for _ in range(50))


def test_serving_an_unknown_service_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["serve", "warehouse"])

    assert result.exit_code == 3
    assert "gateway, catalog, orders, payments" in result.output
