"""The customer list in a real Chromium: paging both ways, page size, column picker and saved views."""

from __future__ import annotations

import re

import pytest

from kizuna.db import transaction
from tests import factories

pytestmark = pytest.mark.browser


def test_page_through_choose_columns_and_save_a_view(sign_in, live_server, db):
    with transaction(db) as s:
        for i in range(30):
            factories.customer(s, email=f"p{i:02d}@example.jp", given_name=f"太郎{i:02d}", lifecycle_stage="lead")
    page = sign_in("marketer")
    table = page.get_by_test_id("customer-table")
    rows = table.locator("tbody tr")
    assert rows.count() == 30 and "全30件" in page.get_by_test_id("list-count").inner_text()

    # 25 rows a page, oldest first: next shows the last 5, previous goes back.
    page.select_option("[data-testid=page-size]", "25")
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*size=25.*"))
    page.click("th[data-col=created_at] a")  # the first click sorts ascending
    page.wait_for_url(re.compile(r".*sort=created_at.*"))
    assert rows.count() == 25 and "p00@example.jp" in rows.first.inner_text()
    page.get_by_test_id("next-page").click()
    page.wait_for_url(re.compile(r".*cursor=.*"))
    assert rows.count() == 5 and "p25@example.jp" in rows.first.inner_text()
    assert page.get_by_test_id("next-page").count() == 0
    page.get_by_test_id("prev-page").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=customer-table] tbody tr').length === 25")
    assert "p00@example.jp" in rows.first.inner_text() and page.get_by_test_id("prev-page").count() == 0

    # Columns: hide the e-mail, show the stage.
    page.get_by_test_id("column-picker").locator("summary").click()
    page.get_by_test_id("col-email").uncheck()
    page.get_by_test_id("col-lifecycle_stage").check()
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(r".*cols=lifecycle_stage.*"))
    headers = table.locator("thead th").evaluate_all("ths => ths.map(th => th.dataset.col)")
    assert "email" not in headers and "lifecycle_stage" in headers
    assert "見込み客" in rows.first.inner_text() or "リード" in rows.first.inner_text()

    # Save this state as a view, reset the list, and apply the view with one click.
    page.get_by_test_id("view-name").fill("古い順・ステージ")
    page.get_by_test_id("save-view").click()
    page.wait_for_url(re.compile(r".*/customers\?.*"))
    assert page.get_by_test_id("view-link").inner_text() == "古い順・ステージ"
    page.goto(f"{live_server}/customers")
    assert "p29@example.jp" in rows.first.inner_text()  # newest first again, with the e-mail column
    page.get_by_test_id("view-link").click()
    page.wait_for_url(re.compile(r".*sort=created_at.*"))
    headers = table.locator("thead th").evaluate_all("ths => ths.map(th => th.dataset.col)")
    assert "email" not in headers and "lifecycle_stage" in headers
    assert "太郎00" in rows.first.inner_text()
    assert page.get_by_test_id("view-link").get_attribute("aria-current") == "true"

    # Make it the default: the list now opens with it.
    page.get_by_test_id("view-default").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("view-default").get_attribute("aria-pressed") == "true"
    page.goto(f"{live_server}/customers")
    page.wait_for_url(re.compile(r".*sort=created_at.*"))
    assert "太郎00" in rows.first.inner_text()

    # Delete it.
    page.get_by_test_id("view-delete").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("view-link").count() == 0


def test_list_fits_a_phone_screen(sign_in, live_server, db):
    with transaction(db) as s:
        factories.customer(s, email="narrow@example.jp")
    page = sign_in("viewer")
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{live_server}/customers?mine=1&size=25")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
