"""The forecast page over HTTP in both languages (numbers in the tables, a bad period refused beside the form),
and in a real Chromium: its charts are drawn by plotly, it fits a 390px phone and passes axe-core."""

from __future__ import annotations

import re

import pytest

from tests.phone import page_problems
from tests.sales.test_forecast import seed


def _cells(html: str, testid: str) -> list[list[str]]:
    table = re.search(rf'data-testid="{testid}".*?</table>', html, re.S)
    assert table, f"no table {testid}"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)
    cells = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows]
    return [c for c in cells if c]  # the header row has no <td>


def test_forecast_page_shows_each_chart_with_its_numbers_in_both_languages(db, ui_client):
    seed(db)
    ui = ui_client("viewer")
    r = ui.get("/deals/forecast", params={"from": "2026-01-01", "to": "2026-04-30"})
    assert r.status_code == 200, r.text
    assert _cells(r.text, "table-month") == [
        ["2026-03", "JPY", "2", "¥3,000,000", "¥1,100,000"],
        ["2026-03", "USD", "1", "USD 1,000.00", "USD 500.00"],
        ["2026-04", "JPY", "1", "¥400,000", "¥300,000"],
    ]
    assert _cells(r.text, "table-owner-rate") == [
        ["Alice", "2", "1", "1", "50.0%", "25.0"],
        ["Bob", "2", "1", "1", "50.0%", "7.0"],
    ]
    assert _cells(r.text, "table-stage")[0] == ["アポイント", "JPY", "1", "¥1,000,000", "¥100,000"]
    for key in ("month", "owner", "stage", "stage-rate", "owner-rate"):
        assert f'data-chart="chart-{key}"' in r.text
    assert "売上予測" in r.text and "/vendor/plotly.min.js" in r.text
    ui.cookies.set("kizuna_lang", "en")
    r = ui.get("/deals/forecast")
    assert "Sales forecast" in r.text
    assert _cells(r.text, "table-stage")[0] == ["Appointment", "JPY", "1", "¥1,000,000", "¥100,000"]
    r = ui.get("/deals/forecast", params={"from": "2026-05-01", "to": "2026-04-01"})
    assert r.status_code == 422 and 'data-testid="forecast-error"' in r.text and "2026-05-01" in r.text
    assert 'value="2026-05-01"' in r.text  # the user's input is kept


@pytest.mark.browser
def test_forecast_page_draws_its_charts_fits_a_phone_and_passes_axe(live_server, sign_in, db):
    page = sign_in("viewer", "viewer@example.com")
    seed(db)
    problems = []
    for lang in ("ja", "en"):
        page.goto(f"{live_server}/lang/{lang}?next=/home")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live_server}/deals/forecast")
        for key in ("month", "owner", "stage", "stage-rate", "owner-rate"):
            chart = page.locator(f'[data-testid="chart-{key}"]')
            chart.locator("svg.main-svg").first.wait_for()
            assert chart.get_attribute("data-drawn") == "true"
        bars = page.locator('[data-testid="chart-month"] g.point')
        assert bars.count() == 3  # March and April in yen, March in dollars
        assert page.locator('[data-testid="table-month"] tbody tr').count() == 3
        page.set_viewport_size({"width": 390, "height": 900})
        page.goto(f"{live_server}/deals/forecast")
        page.locator('[data-testid="chart-month"] svg.main-svg').first.wait_for()
        problems += page_problems(page, f"[{lang}]")
    assert not problems, "\n".join(problems)
