"""Cohorts and repeat purchases computed by Ibis on DuckDB reading the store (SQLite and PostgreSQL) and by the
store's own engine, checked by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from kizuna.analytics import periods
from kizuna.analytics.cohorts import CohortSpec, cohorts
from kizuna.analytics.engine import ibis_url, open_store
from kizuna.db import transaction
from kizuna.errors import ValidationError
from tests import factories
from tests.cli import kizuna as run_kizuna

JST = ZoneInfo("Asia/Tokyo")


def _jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


@pytest.fixture(params=["duckdb", "native"])
def store(db: Engine, request: pytest.FixtureRequest):  # noqa: ANN201
    """As in test_rfm_deciles: DuckDB reading the store, and the store's own engine through Ibis."""
    url = db.url.render_as_string(hide_password=False)
    s = open_store(url, analytics_url="" if request.param == "duckdb" else ibis_url(url))
    yield s
    s.con.disconnect()


def _order(s, customer_id: int, at: dt.datetime, amount: int | None = None, lines=(), **fields) -> None:  # noqa: ANN001
    factories.order(s, customer_id=customer_id, ordered_at=at, total_amount=amount, lines=list(lines), **fields)


def _line(product_id: int | None, amount: int, sku: str | None = None) -> dict:
    return {"product_id": product_id, "sku": sku, "unit_price": amount}


def _shop(db: Engine) -> dict[str, int]:
    """Five customers whose numbers are worked out by hand in the tests below."""
    future = dt.datetime.combine(periods.today() + dt.timedelta(days=10), dt.time(12), tzinfo=JST)
    with transaction(db) as s:
        tea = factories.product(s, sku="TEA", name="煎茶", category="tea").id
        coffee = factories.product(s, sku="COF", name="珈琲", category="coffee").id
        cups = factories.product(s, sku="CUP", name="湯呑", category="tableware").id
        loose = factories.product(s, sku="BAG", name="紙袋").id  # no category
        ids = {name: factories.customer(s, family_name=name).id for name in ("A", "B", "C", "D", "E", "F")}
        a, b, c, d, e, f = ids.values()
        # A: 23:30 JST on 31 January is January's; tea outspends the cups in the first purchase.
        _order(s, a, _jst(2024, 1, 31, 23, 30), lines=[_line(tea, 600), _line(cups, 400)])
        _order(s, a, _jst(2024, 2, 15, 12), 500)
        _order(s, a, _jst(2024, 2, 20, 12), 300)
        _order(s, a, _jst(2024, 4, 10, 12), 200)
        # B: 00:30 JST on 1 February (still January in UTC) is February's; two orders on one day are one purchase.
        _order(s, b, _jst(2024, 2, 1, 0, 30), lines=[_line(coffee, 2000)])
        _order(s, b, _jst(2024, 2, 1, 10), 100)
        _order(s, b, _jst(2024, 3, 1, 12), 5000, status="cancelled")
        _order(s, b, _jst(2024, 3, 2, 12), 4000, status="returned")
        _order(s, b, _jst(2024, 3, 3, 12), -500)  # a refund is no purchase
        _order(s, b, _jst(2024, 3, 4, 12), 50, currency="USD")
        # C: a single order without lines: uncategorised.
        _order(s, c, _jst(2024, 1, 5, 12), 700)
        # D: coffee and tea tie in the first purchase (coffee wins by name); an uncategorised line is ignored;
        # the second purchase comes 90 days later.
        _order(s, d, _jst(2024, 1, 10, 12), lines=[_line(tea, 300), _line(coffee, 300), _line(loose, 900)])
        _order(s, d, _jst(2024, 4, 9, 12), 400)
        # E: only a future-dated order: not a customer yet. F: one order, and one in the future that is not seen.
        _order(s, e, future, 999)
        _order(s, f, _jst(2024, 3, 1, 12), lines=[_line(tea, 800)])
        _order(s, f, future, 999)
    return ids


def test_retention_matrix_by_month_of_first_purchase_in_the_configured_zone(db, store):
    _shop(db)
    result = cohorts(store, CohortSpec(months=4))
    assert result.currency == "JPY" and result.months == 4
    by_month = {c.month: c for c in result.cohorts}
    assert list(by_month) == ["2024-01", "2024-02", "2024-03"]
    jan, feb, mar = by_month.values()
    assert jan.customers == 3 and jan.active == [3, 1, 0, 2, 0]
    assert jan.share == pytest.approx([1.0, 1 / 3, 0.0, 2 / 3, 0.0], rel=1e-12)
    assert jan.revenue == [Decimal(x) for x in ("3200.00", "800.00", "0.00", "600.00", "0.00")]
    assert (feb.customers, feb.active, feb.revenue[0]) == (1, [1, 0, 0, 0, 0], Decimal("2100.00"))
    assert (mar.customers, mar.active[0], mar.revenue[0]) == (1, 1, Decimal("800.00"))


def test_repeat_rate_counts_purchase_days_and_orders(db, store):
    _shop(db)
    repeat = cohorts(store, CohortSpec()).repeat
    # A, B, C, D, F; E's only order is in the future.
    assert (repeat.customers, repeat.repeat_customers, repeat.multi_order_customers) == (5, 2, 3)
    assert repeat.repeat_rate == pytest.approx(0.4) and repeat.multi_order_rate == pytest.approx(0.6)


def test_time_between_purchases_in_days_between_purchase_days(db, store):
    _shop(db)
    between = cohorts(store, CohortSpec()).time_between
    # A: 31 Jan → 15 Feb → 20 Feb → 10 Apr (15, 5, 50); D: 10 Jan → 9 Apr (90).
    assert between.gaps == 4 and between.median_days == 32.5 and between.mean_days == 40.0
    bars = {(b.min_days, b.max_days): b.gaps for b in between.buckets}
    assert bars == {
        (1, 7): 1,
        (8, 14): 0,
        (15, 30): 1,
        (31, 60): 1,
        (61, 90): 1,
        (91, 180): 0,
        (181, 365): 0,
        (366, None): 0,
    }
    assert sum(b.share for b in between.buckets) == pytest.approx(1.0)


def test_second_purchase_by_first_category(db, store):
    _shop(db)
    got = {c.category: c for c in cohorts(store, CohortSpec()).categories}
    assert list(got) == ["coffee", "tea", None]  # most customers first, uncategorised last
    coffee, tea, none = got.values()
    assert (coffee.customers, coffee.repeat_customers, coffee.repeat_share) == (2, 1, 0.5)  # B; D
    assert [(w.days, w.eligible, w.converted) for w in coffee.windows] == [(30, 2, 0), (60, 2, 0), (90, 2, 1)]
    assert (tea.customers, tea.repeat_customers) == (2, 1)  # A (15 days later), F
    assert [w.converted for w in tea.windows] == [1, 1, 1] and tea.windows[0].share == 0.5
    assert (none.customers, none.repeat_customers, none.repeat_share) == (1, 0, 0.0)  # C


def test_the_period_picks_cohorts_by_the_first_purchase_ever(db, store):
    ids = _shop(db)
    feb = cohorts(store, CohortSpec(start=dt.date(2024, 2, 1), end=dt.date(2024, 2, 29), months=2))
    # A ordered in February too, but was acquired in January: only B is February's.
    assert [(c.month, c.customers, c.active) for c in feb.cohorts] == [("2024-02", 1, [1, 0, 0])]
    assert feb.repeat.customers == 1 and feb.time_between.gaps == 0
    assert [c.category for c in feb.categories] == ["coffee"]
    # A period starting mid-month shows the part of that month's cohort acquired in it (A, not C or D).
    late_jan = cohorts(store, CohortSpec(start=dt.date(2024, 1, 15), end=dt.date(2024, 1, 31), months=1))
    assert [(c.month, c.customers, c.active) for c in late_jan.cohorts] == [("2024-01", 1, [1, 1])]
    assert ids  # the same shop as above


def test_other_currencies_are_their_own_analysis(db, store):
    _shop(db)
    usd = cohorts(store, CohortSpec(currency="usd", months=1))
    assert usd.currency == "USD"
    assert [(c.month, c.customers, c.revenue[0]) for c in usd.cohorts] == [("2024-03", 1, Decimal("50.00"))]


def test_months_not_reached_yet_are_empty_not_zero(db, store):
    this_month = periods.today().replace(day=1)
    with transaction(db) as s:
        cid = factories.customer(s, family_name="新規").id
        _order(s, cid, dt.datetime.combine(this_month, dt.time(12), tzinfo=JST), 1000)
    [cohort] = cohorts(store, CohortSpec(months=2)).cohorts
    assert cohort.month == this_month.strftime("%Y-%m")
    assert cohort.active == [1, None, None] and cohort.share == [1.0, None, None]
    assert cohort.revenue == [Decimal("1000.00"), None, None]
    # A customer acquired today has had no time for a second purchase: no window counts them yet.
    [category] = cohorts(store, CohortSpec()).categories
    assert [(w.eligible, w.share) for w in category.windows] == [(0, None), (0, None), (0, None)]


def test_no_orders_gives_an_empty_result(db, store):
    result = cohorts(store, CohortSpec(start=dt.date(2024, 1, 1), end=dt.date(2024, 12, 31)))
    assert result.cohorts == [] and result.categories == []
    assert (result.repeat.customers, result.repeat.repeat_rate) == (0, 0.0)
    assert (result.time_between.gaps, result.time_between.median_days) == (0, None)
    assert all(b.gaps == 0 for b in result.time_between.buckets)


def test_a_period_that_ends_before_it_starts_is_refused(db, store):
    with pytest.raises(ValidationError, match="after it ends"):
        cohorts(store, CohortSpec(start=dt.date(2024, 2, 1), end=dt.date(2024, 1, 1)))


@pytest.mark.parametrize(
    ("zone", "instant", "day"),
    [
        ("Asia/Tokyo", dt.datetime(2024, 1, 31, 14, 30, tzinfo=dt.UTC), dt.date(2024, 1, 31)),  # 23:30 JST
        ("Asia/Tokyo", dt.datetime(2024, 1, 31, 15, 30, tzinfo=dt.UTC), dt.date(2024, 2, 1)),  # 00:30 JST
        ("Europe/Berlin", dt.datetime(2024, 3, 31, 22, 30, tzinfo=dt.UTC), dt.date(2024, 4, 1)),  # 00:30 CEST
        ("Europe/Berlin", dt.datetime(2024, 1, 31, 22, 30, tzinfo=dt.UTC), dt.date(2024, 1, 31)),  # 23:30 CET
        ("America/New_York", dt.datetime(2024, 11, 1, 3, 30, tzinfo=dt.UTC), dt.date(2024, 10, 31)),  # 23:30 EDT
        ("America/New_York", dt.datetime(2024, 12, 1, 4, 30, tzinfo=dt.UTC), dt.date(2024, 11, 30)),  # 23:30 EST
        ("UTC", dt.datetime(2000, 2, 29, 23, 59, 59, tzinfo=dt.UTC), dt.date(2000, 2, 29)),
    ],
)
def test_local_day_and_month_follow_the_zones_rules(monkeypatch, zone, instant, day):
    import ibis

    from kizuna.config import get_settings

    monkeypatch.setenv("KIZUNA_DEFAULT_TIMEZONE", zone)
    get_settings.cache_clear()
    try:
        at = ibis.literal(int(instant.timestamp()))
        expr = periods.month_of_day(periods.local_day(at))
        con = ibis.duckdb.connect()
        assert con.execute(periods.local_day(at)) == periods.day_number(day)
        assert con.execute(expr) == periods.month_number(day)
        assert periods.month_label(periods.month_number(day)) == day.strftime("%Y-%m")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_cohorts_over_http_and_from_the_cli(client, db):
    import json
    import subprocess

    _shop(db)
    r = client.get("/api/v1/analytics/cohorts", params={"from": "2024-01-01", "to": "2024-01-31", "months": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(c["month"], c["customers"], c["active"]) for c in body["cohorts"]] == [("2024-01", 3, [3, 1, 0, 2])]
    assert body["cohorts"][0]["revenue"][0] == "3200.00" and body["repeat"]["repeat_customers"] == 2
    assert [c["category"] for c in body["categories"]] == ["coffee", "tea", None]  # one each: by name
    bad = client.get("/api/v1/analytics/cohorts", params={"from": "2024-12-31", "to": "2024-01-01"})
    assert bad.status_code == 422 and "after it ends" in bad.json()["error"]["message"]
    assert client.get("/api/v1/analytics/cohorts", params={"months": 0}).status_code == 422

    def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
        return run_kizuna("analytics", "cohorts", *args, engine=db)

    out = kizuna("--from", "2024-01-01", "--to", "2024-03-31", "--months", "2", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert [c["month"] for c in json.loads(out.stdout)["cohorts"]] == ["2024-01", "2024-02", "2024-03"]
    out = kizuna("--from", "2024-02-01", "--to", "2024-02-29", "--months", "1", "--format", "csv")
    assert out.stdout.splitlines() == [
        "cohort,cohort_customers,offset,customers,share,revenue_JPY",
        "2024-02,1,0,1,1.0,2100.00",
        "2024-02,1,1,0,0.0,0.00",
    ]
    out = kizuna("--format", "csv", "--part", "categories")
    assert out.stdout.splitlines()[0].startswith("category,customers,repeat_customers,repeat_share,eligible_30d")
    out = kizuna("--from", "2024-01-01")
    assert out.returncode == 0 and "Retention" in out.stdout and "(uncategorised)" in out.stdout
    out = kizuna("--part", "nope")
    assert out.returncode == 2 and "unknown part 'nope'" in out.stdout


def test_month_of_day_is_right_for_every_day_it_covers_and_its_sql_stays_small():
    import ibis

    first, last = dt.date(1968, 3, 1), dt.date(2100, 2, 28)
    days = list(range(periods.day_number(first), periods.day_number(last) + 1))
    table = ibis.memtable({"d": days})
    expr = table.mutate(m=periods.month_of_day(table.d)).order_by("d")
    got = ibis.duckdb.connect().execute(expr)["m"].tolist()
    assert got == [periods.month_number(first + dt.timedelta(days=i)) for i in range(len(days))]
    # Ibis writes a reused subexpression out at every use: a formula that reuses much grows to thousands of lines.
    assert len(ibis.to_sql(expr, dialect="duckdb").splitlines()) < 150
