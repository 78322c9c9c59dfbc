"""The forecast on both backends with numbers computed by hand: four open deals (three in yen, one in dollars)
give the weighted pipeline by month, owner and stage; four closed deals with a known stage history give the win
rates and sales cycles. Through the service, the API (with bad input) and ``kizuna deals forecast``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

from sqlalchemy import select, update

from kizuna.db import transaction
from kizuna.sales import deals, forecast, pipelines
from kizuna.sales.models import DealStageChange
from kizuna.sales.schemas import DealCreate
from tests import factories
from tests.sales.test_teams_and_cli import _kizuna


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T03:00:00").replace(tzinfo=dt.UTC)  # noon in Tokyo


def seed(db) -> dict:  # noqa: ANN001
    """Open: A ¥1,000,000 at 10% (Mar, alice), B ¥2,000,000 at 50% (Mar, bob), C ¥400,000 at 75% (Apr, alice),
    D $1,000.00 at 50% (Mar, alice). Closed: W1 alice won in 30 days through stages 0, 1, 2; W2 bob won in 10 days
    through 0, 2; L1 alice lost in 20 days through 0, 1; L2 bob lost in 4 days (in March) through 0."""
    with transaction(db) as s:
        alice = factories.user(s, email="alice@example.com", role="sales", name="Alice")
        bob = factories.user(s, email="bob@example.com", role="sales", name="Bob")
        customer = factories.customer(s)
        st = [x.id for x in pipelines.stages_of(s, pipelines.default_pipeline(s).id)]
        s.flush()

        def deal(name: str, amount: str, owner: int, stage: int, probability: int, close: str | None, cur: str = "JPY"):  # noqa: ANN202
            return deals.create_deal(
                s,
                actor=factories.SYSTEM,
                data=DealCreate(
                    name=name, customer_id=customer.id, amount=Decimal(amount), currency=cur, owner_id=owner,
                    stage_id=stage, probability=probability,
                    expected_close_date=dt.date.fromisoformat(close) if close else None,
                ),
            )  # fmt: skip

        deal("A", "1000000", alice.id, st[0], 10, "2026-03-15")
        deal("B", "2000000", bob.id, st[2], 50, "2026-03-31")
        deal("C", "400000", alice.id, st[3], 75, "2026-04-10")
        deal("D", "1000.00", alice.id, st[2], 50, "2026-03-20", "USD")
        histories = {
            "W1": (
                alice.id, [(st[0], "2026-01-01"), (st[1], "2026-01-05"), (st[2], "2026-01-10"), (st[4], "2026-01-31")],
            ),
            "W2": (bob.id, [(st[0], "2026-02-01"), (st[2], "2026-02-05"), (st[4], "2026-02-11")]),
            "L1": (alice.id, [(st[0], "2026-01-10"), (st[1], "2026-01-12"), (st[5], "2026-01-30")]),
            "L2": (bob.id, [(st[0], "2026-03-01"), (st[5], "2026-03-05")]),
        }  # fmt: skip
        for name, (owner, steps) in histories.items():
            made = deal(name, "500000", owner, steps[0][0], 10, "2026-02-15")
            s.flush()
            for stage, _ in steps[1:]:
                deals.move_deal(s, actor=factories.SYSTEM, deal_id=made.id, stage_id=stage, lost_reason="予算")
            s.flush()
            changes = s.scalars(
                select(DealStageChange.id).where(DealStageChange.deal_id == made.id).order_by(DealStageChange.id)
            ).all()
            for change_id, (_, day) in zip(changes, steps, strict=True):
                s.execute(update(DealStageChange).where(DealStageChange.id == change_id).values(changed_at=_at(day)))
        return {"alice": alice.id, "bob": bob.id, "stages": st}


def _weighted(rows: list[forecast.WeightedRow]) -> list[tuple]:
    return [(r.key, r.currency, r.deals, r.amount, r.weighted) for r in rows]


def _rates(rows: list[forecast.ConversionRow]) -> list[tuple]:
    return [(r.key, r.closed, r.won, r.lost, r.win_rate, r.average_cycle_days) for r in rows]


def test_weighted_pipeline_by_month_owner_and_stage_never_adds_currencies(db):
    ids = seed(db)
    st, alice, bob = ids["stages"], ids["alice"], ids["bob"]
    with transaction(db) as s:
        result = forecast.forecast(s, actor=factories.SYSTEM, spec=forecast.ForecastSpec())
    d = Decimal
    assert _weighted(result.totals) == [
        (None, "JPY", 3, d("3400000.00"), d("1400000.00")), (None, "USD", 1, d("1000.00"), d("500.00")),
    ]  # fmt: skip
    assert _weighted(result.by_month) == [
        ("2026-03", "JPY", 2, d("3000000.00"), d("1100000.00")),
        ("2026-03", "USD", 1, d("1000.00"), d("500.00")),
        ("2026-04", "JPY", 1, d("400000.00"), d("300000.00")),
    ]
    assert _weighted(result.by_owner) == [
        (alice, "JPY", 2, d("1400000.00"), d("400000.00")),
        (alice, "USD", 1, d("1000.00"), d("500.00")),
        (bob, "JPY", 1, d("2000000.00"), d("1000000.00")),
    ]
    assert [r.label for r in result.by_owner] == ["Alice", "Alice", "Bob"]
    assert _weighted(result.by_stage) == [
        (st[0], "JPY", 1, d("1000000.00"), d("100000.00")),
        (st[2], "JPY", 1, d("2000000.00"), d("1000000.00")),
        (st[2], "USD", 1, d("1000.00"), d("500.00")),
        (st[3], "JPY", 1, d("400000.00"), d("300000.00")),
    ]
    assert [(r.label, r.label_en) for r in result.by_stage][:2] == [("アポイント", "Appointment"), ("提案", "Proposal")]
    # A period filters close dates; a currency or an owner filters deals.
    with transaction(db) as s:
        april = forecast.forecast(
            s, actor=factories.SYSTEM, spec=forecast.spec_of(start="2026-04-01", end="2026-04-30")
        )
        dollars = forecast.forecast(s, actor=factories.SYSTEM, spec=forecast.spec_of(currency="usd"))
        bobs = forecast.forecast(s, actor=factories.SYSTEM, spec=forecast.spec_of(owner_id=bob))
    assert _weighted(april.by_month) == [("2026-04", "JPY", 1, d("400000.00"), d("300000.00"))]
    assert _weighted(dollars.totals) == [(None, "USD", 1, d("1000.00"), d("500.00"))]
    assert _weighted(bobs.totals) == [(None, "JPY", 1, d("2000000.00"), d("1000000.00"))]


def test_win_rate_and_sales_cycle_per_stage_and_owner_from_the_stage_history(db):
    ids = seed(db)
    st, alice, bob = ids["stages"], ids["alice"], ids["bob"]
    with transaction(db) as s:
        winter = forecast.forecast(
            s, actor=factories.SYSTEM, spec=forecast.spec_of(start="2026-01-01", end="2026-02-28")
        )
        everything = forecast.forecast(s, actor=factories.SYSTEM, spec=forecast.ForecastSpec())
    # January-February: W1 (30 days), W2 (10), L1 (20) closed; L2 closed in March.
    assert _rates([winter.overall]) == [(None, 3, 2, 1, 0.6667, 20.0)]
    assert _rates(winter.stage_conversion) == [
        (st[0], 3, 2, 1, 0.6667, 20.0),  # every closed deal started at the first stage
        (st[1], 2, 1, 1, 0.5, 25.0),  # W1 and L1
        (st[2], 2, 2, 0, 1.0, 20.0),  # W1 and W2
        (st[3], 0, 0, 0, None, None),
        (st[4], 2, 2, 0, 1.0, 20.0),
        (st[5], 1, 0, 1, 0.0, 20.0),
    ]
    assert _rates(winter.owner_performance) == [(alice, 2, 1, 1, 0.5, 25.0), (bob, 1, 1, 0, 1.0, 10.0)]
    assert _rates([everything.overall]) == [(None, 4, 2, 2, 0.5, 16.0)]
    assert _rates(everything.owner_performance)[1] == (bob, 2, 1, 1, 0.5, 7.0)
    # The weighted pipeline of that period: no open deal closes in January or February.
    assert winter.totals == []


def test_api_reads_the_forecast_for_every_role_and_names_bad_input(db, client_as):
    seed(db)
    viewer = client_as("viewer")
    r = viewer.get("/api/v1/deals/forecast", params={"from": "2026-03-01", "to": "2026-03-31", "currency": "JPY"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(m["key"], m["amount"], m["weighted"]) for m in body["by_month"]] == [
        ("2026-03", "3000000.00", "1100000.00")
    ]
    assert body["overall"]["closed"] == 1 and body["overall"]["won"] == 0  # L2, lost on 5 March
    r = viewer.get("/api/v1/deals/forecast", params={"pipeline_id": 999})
    assert r.status_code == 422 and "pipeline 999" in r.text
    r = viewer.get("/api/v1/deals/forecast", params={"from": "2026-13-01"})
    assert r.status_code == 422 and "from" in r.text
    r = viewer.get("/api/v1/deals/forecast", params={"from": "2026-04-01", "to": "2026-03-01"})
    assert r.status_code == 422 and "after it ends" in r.text
    r = viewer.get("/api/v1/deals/forecast", params={"currency": "yenn"})
    assert r.status_code == 422 and "ISO 4217" in r.text
    from fastapi.testclient import TestClient

    assert TestClient(viewer.app).get("/api/v1/deals/forecast").status_code == 401


def test_cli_prints_the_forecast_as_json_csv_and_table(db, tmp_path):
    ids = seed(db)
    url = db.url.render_as_string(hide_password=False)
    out = _kizuna(tmp_path, url, "forecast", "--from", "2026-01-01", "--to", "2026-02-28", "--format", "json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["overall"]["average_cycle_days"] == 20.0 and body["overall"]["win_rate"] == 0.6667
    out = _kizuna(tmp_path, url, "forecast", "--pipeline", str(999), "--format", "csv")
    assert out.returncode == 2 and "pipeline 999" in out.stdout + out.stderr
    out = _kizuna(tmp_path, url, "forecast", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    months = [(r["key"], r["currency"], r["weighted"]) for r in rows if r["section"] == "month"]
    assert months == [("2026-03", "JPY", "1100000.00"), ("2026-03", "USD", "500.00"), ("2026-04", "JPY", "300000.00")]
    owners = {(r["label"], r["win_rate"]) for r in rows if r["section"] == "owner_performance"}
    assert owners == {("Alice", "0.5"), ("Bob", "0.5")}
    out = _kizuna(tmp_path, url, "forecast")
    assert out.returncode == 0 and "By expected close month" in out.stdout and str(ids["alice"]) in out.stdout
    out = _kizuna(tmp_path, url, "forecast", "--format", "xml")
    assert out.returncode == 2 and "--format" in out.stdout
