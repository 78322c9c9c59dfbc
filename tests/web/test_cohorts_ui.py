"""The cohorts page: the retention heat-map, the time-between histogram and the second-purchase chart, each with
its numbers as a table and a CSV download, in the user's language."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")


def _shop(db) -> None:  # noqa: ANN001
    """Six customers in two cohorts: January (four, half of them back in March) and February (two, none back)."""
    with transaction(db) as s:
        tea = factories.product(s, sku="TEA", name="煎茶", category="緑茶").id
        for i in range(6):
            cid = factories.customer(s, family_name=f"客{i}").id
            first = dt.datetime(2024, 1 if i < 4 else 2, 10 + i, 12, tzinfo=JST)
            lines = [{"product_id": tea, "unit_price": 1000}] if i % 2 == 0 else []
            factories.order(s, customer_id=cid, ordered_at=first, total_amount=1000, lines=lines)
            if i < 2:
                factories.order(
                    s, customer_id=cid, ordered_at=first + dt.timedelta(days=60), total_amount=500, lines=[]
                )


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_cohorts_page_shows_the_tables_in_japanese_and_each_csv(ui_client, db):
    _shop(db)
    client = ui_client("viewer")
    params = {"from": "2024-01-01", "to": "2024-12-31", "months": "3"}
    page = client.get("/analytics/cohorts", params=params)
    assert page.status_code == 200
    html = page.text
    assert "初回購入月別の継続率" in html and "カテゴリなし" in html and "2か月後" in html
    for testid in ("cohorts-retention", "cohorts-gaps", "cohorts-categories", "cohorts-repeat"):
        assert f'data-testid="{testid}"' in html
    assert "33.3%" in html  # repeat rate: 2 of 6
    retention = client.get("/analytics/cohorts.csv", params=params)
    assert retention.status_code == 200 and retention.headers["content-type"].startswith("text/csv")
    rows = _csv_rows(retention.text)
    assert [(r["cohort"], r["offset"], r["customers"]) for r in rows if r["cohort"] == "2024-01"] == [
        ("2024-01", "0", "4"),
        ("2024-01", "1", "0"),
        ("2024-01", "2", "2"),
        ("2024-01", "3", "0"),
    ]
    assert rows[2]["share"] == "0.5" and rows[2]["revenue_JPY"] == "1000.00"
    gaps = _csv_rows(client.get("/analytics/cohorts.csv", params={**params, "part": "time-between"}).text)
    assert [(g["label"], g["purchases"]) for g in gaps if g["purchases"] != "0"] == [("31〜60 日", "2")]
    categories = _csv_rows(client.get("/analytics/cohorts.csv", params={**params, "part": "categories"}).text)
    assert [(c["category"], c["label"], c["customers"], c["repeat_customers"]) for c in categories] == [
        ("緑茶", "緑茶", "3", "1"),
        ("", "カテゴリなし", "3", "1"),
    ]
    assert client.get("/analytics/cohorts.csv", params={"part": "nope"}).status_code == 422


def test_cohorts_page_refuses_bad_input_in_the_users_language(ui_client, db):
    client = ui_client("viewer")
    r = client.get("/analytics/cohorts", params={"from": "2024-12-31", "to": "2024-01-01"})
    assert r.status_code == 422 and 'data-testid="analytics-error"' in r.text
    r = client.get("/analytics/cohorts", params={"months": "abc"})
    assert r.status_code == 422 and 'data-testid="analytics-error"' in r.text
    empty = client.get("/analytics/cohorts")
    assert empty.status_code == 200 and "該当するデータはありません。" in empty.text  # no orders: empty, not an error


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 390])
def test_cohort_charts_are_drawn_and_the_csv_downloads(sign_in, live_server, db, width):
    _shop(db)
    page = sign_in("marketer")
    page.set_viewport_size({"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(f"{live_server}/lang/ja?next=/analytics/cohorts%3Ffrom%3D2024-01-01%26to%3D2024-12-31%26months%3D3")
    for chart in ("cohort-heat-data", "cohort-gaps-data", "cohort-categories-data"):
        drawn = page.locator(f"[data-chart={chart}][data-drawn=true]")
        drawn.wait_for()
        # Drawn means plotly put marks on the canvas, not just an empty frame.
        assert drawn.locator(".heatmaplayer image, .barlayer .point path").count() > 0, chart
    assert page.locator(".tabs a.active").inner_text() == "コホート"
    with page.expect_download() as download:
        page.get_by_test_id("cohorts-csv").click()
    assert download.value.suggested_filename == "cohorts-retention.csv"
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    assert text.splitlines()[0] == "cohort,cohort_customers,offset,customers,share,revenue_JPY"
    assert all(url.startswith(live_server) for url in requests), [u for u in requests if not u.startswith(live_server)]
    assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
