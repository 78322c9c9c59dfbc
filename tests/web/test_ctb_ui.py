"""The CTB page: share per value as a chart with its table and CSV, the customer groups, and the "likely to buy"
list linking to the customers, in both languages."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest

from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")


def _shop(db) -> list[int]:  # noqa: ANN001
    with transaction(db) as s:
        factories.product(s, sku="T1", name="煎茶", category="お茶", taste="緑茶", brand="山田園")
        factories.product(s, sku="C1", name="深煎り", category="コーヒー", taste="苦味", brand="北珈琲")
        factories.product(s, sku="X1", name="福袋")
        ids = [factories.customer(s, family_name=f"客{i}").id for i in range(5)]
        baskets = [["T1", "C1"], ["T1", "C1"], ["T1"], ["C1"], ["X1"]]
        for cid, basket in zip(ids, baskets, strict=True):
            lines = [{"sku": sku, "quantity": 1, "unit_price": 1000} for sku in basket]
            factories.order(s, customer_id=cid, ordered_at=dt.datetime(2024, 5, 1, 12, tzinfo=JST), lines=lines)
    return ids


def test_ctb_page_shows_the_chart_values_groups_and_a_csv(ui_client, db):
    _shop(db)
    client = ui_client("viewer")
    page = client.get("/analytics/ctb", params={"to": "2024-12-31"})
    assert page.status_code == 200
    text = page.text
    for part in ('data-chart="chart-data"', 'data-testid="ctb-values"', 'data-testid="ctb-groups"'):
        assert part in text
    # Japanese labels, the uncategorised bucket named, no raw codes in the visible page.
    visible = re.sub(r"<script.*?</script>", "", text, flags=re.S)
    assert "カテゴリ別の売上構成比" in visible and "（未分類）" in visible and "お茶" in visible
    assert "category" not in visible.split('data-testid="ctb-values"')[1].split("</table>")[0]
    r = client.get("/analytics/ctb.csv", params={"to": "2024-12-31", "dimension": "brand"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [(row["value"], row["customers"], row["revenue"]) for row in rows] == [
        ("北珈琲", "3", "3000.00"),
        ("山田園", "3", "3000.00"),
        ("", "1", "1000.00"),
    ]
    groups = client.get("/analytics/ctb/groups.csv", params={"to": "2024-12-31"})
    assert sum(int(g["customers"]) for g in csv.DictReader(io.StringIO(groups.text.lstrip("\ufeff")))) == 5


def test_likely_to_buy_lists_customers_with_links_and_explains_an_unknown_value(ui_client, db):
    ids = _shop(db)
    client = ui_client("marketer")
    params = {"dimension": "brand", "to": "2024-05-31", "likely": "北珈琲"}
    page = client.get("/analytics/ctb", params=params)
    assert page.status_code == 200 and 'data-testid="likely-list"' in page.text
    # Only customer 2 (tea only) is left: customers 0, 1 and 3 bought the brand within 90 days.
    listed = page.text.split('data-testid="likely-list"')[1].split("</table>")[0]
    assert f'href="/customers/{ids[2]}"' in listed and f'href="/customers/{ids[0]}"' not in listed
    r = client.get("/analytics/ctb/likely.csv", params=params)
    assert [int(row["customer_id"]) for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff")))] == [ids[2]]
    bad = client.get("/analytics/ctb", params={**params, "likely": "無い"})
    assert bad.status_code == 200 and 'data-testid="likely-error"' in bad.text and "「無い」" in bad.text
    bad = client.get("/analytics/ctb", params={"dimension": "colour"})
    assert bad.status_code == 422 and "カテゴリ・テイスト・ブランド" in bad.text


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 390])
def test_ctb_chart_is_drawn_and_the_likely_form_lists_customers(sign_in, live_server, db, width):
    ids = _shop(db)
    page = sign_in("marketer")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server}/lang/ja?next=/analytics/ctb%3Fdimension%3Dbrand%26to%3D2024-05-31")
    page.wait_for_selector("[data-drawn=true]")
    page.get_by_test_id("ctb-likely-form").get_by_label("ブランド").select_option("北珈琲")
    page.get_by_test_id("ctb-likely-form").locator("button[type=submit]").click()
    page.wait_for_selector('[data-testid="likely-list"]')
    links = page.get_by_test_id("likely-list").locator("a")
    assert links.count() == 1 and links.first.get_attribute("href") == f"/customers/{ids[2]}"
    page.wait_for_selector("[data-drawn=true]")
    assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
