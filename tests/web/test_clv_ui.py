"""The CLV page: its charts' numbers as tables and CSVs that agree with the service, customers linked to their
pages, and refusals in the user's language."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from kizuna.analytics import service
from kizuna.analytics.clv import CLVSpec
from kizuna.auth.permissions import Actor
from tests.analytics import cdnow

QUERY = {"calibration_end": "1997-09-30", "time_unit": "week", "discount": "1"}


def _csv(response) -> list[dict[str, str]]:  # noqa: ANN001
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))


def test_clv_page_tables_and_csvs_agree_with_the_service(ui_client, db, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300, currency="JPY")
    url = db.url.render_as_string(hide_password=False)
    spec = CLVSpec.model_validate({k: v for k, v in QUERY.items() if k != "discount"})
    result = service.clv(actor=Actor.system("test"), spec=spec, database_url=url)
    client = ui_client("viewer")
    page = client.get("/analytics/clv", params=QUERY)
    assert page.status_code == 200, page.text
    html = page.text
    assert "デシル別の予測 LTV" in html and "継続確率" in html and 'id="clv-decile-data"' in html
    top = result.top_customers[0]
    assert f'href="/customers/{top.customer_id}"' in html
    assert 'data-testid="clv-params"' in html and "Gamma-Gamma" in html
    deciles = _csv(client.get("/analytics/clv.csv", params=QUERY))
    assert [int(r["customers"]) for r in deciles] == [30] * 10
    assert [Decimal(r["clv"]) for r in deciles] == [d.clv for d in result.deciles]
    assert deciles[0]["currency"] == "JPY"
    alive = _csv(client.get("/analytics/clv-alive.csv", params=QUERY))
    assert sum(int(r["customers"]) for r in alive) == 300
    rows = _csv(client.get("/analytics/clv-customers.csv", params=QUERY))
    assert len(rows) == 300
    by_id = {int(r["customer_id"]): r for r in rows}
    assert Decimal(by_id[top.customer_id]["clv"]) == top.clv
    assert float(by_id[top.customer_id]["p_alive"]) == pytest.approx(top.p_alive, rel=1e-12)


def test_clv_page_explains_too_little_data_and_bad_options_in_japanese(ui_client, db):
    client = ui_client("viewer")
    r = client.get("/analytics/clv", params=QUERY)
    assert r.status_code == 422 and 'data-testid="analytics-error"' in r.text
    assert "モデルを推定するにはデータが足りません" in r.text
    r = client.get("/analytics/clv", params={**QUERY, "horizon": "9999"})
    assert r.status_code == 422 and "10 年以内" in r.text
    r = client.get("/analytics/clv", params={**QUERY, "time_unit": "month"})
    assert r.status_code == 422 and "次のいずれかを選んでください" in r.text
    r = client.get("/analytics/clv", params={**QUERY, "discount": "abc"})
    assert r.status_code == 422 and "数値で入力してください" in r.text


@pytest.mark.browser
def test_clv_charts_are_drawn(sign_in, live_server, db, tmp_path):
    cdnow.import_into(db, tmp_path, customers=300, currency="JPY")
    page = sign_in("marketer")
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"{live_server}/lang/en?next=/analytics/clv%3Fcalibration_end%3D1997-09-30")
    page.wait_for_selector("[data-chart='clv-alive-data'][data-drawn=true]")
    assert page.locator("[data-drawn=true]").count() == 2
    assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0
