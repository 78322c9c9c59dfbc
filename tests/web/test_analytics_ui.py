"""Analytics pages: numbers in tables beside the charts, CSV downloads, errors in the user's language, charts
drawn by the plotly.js Kizuna serves itself (no CDN) under the page's CSP."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest

from kizuna.db import transaction
from tests import factories

JST = ZoneInfo("Asia/Tokyo")


def _shop(db) -> None:  # noqa: ANN001
    with transaction(db) as s:
        for i in range(12):
            cid = factories.customer(s, family_name=f"客{i}").id
            for k in range(i % 4 + 1):
                factories.order(
                    s,
                    customer_id=cid,
                    ordered_at=dt.datetime(2024, 6, 1 + k, 12, tzinfo=JST),
                    total_amount=1000 * (i + 1),
                    lines=[],
                )


def test_rfm_page_shows_japanese_segment_names_the_grid_and_a_csv(ui_client, db):
    _shop(db)
    client = ui_client("viewer")
    page = client.get("/analytics/rfm", params={"as_of": "2024-12-31"})
    assert page.status_code == 200
    assert "優良顧客" in page.text and "離反顧客" in page.text and "champions" not in page.text.split("<script")[0]
    assert 'data-testid="rfm-grid"' in page.text
    r = client.get("/analytics/rfm.csv", params={"as_of": "2024-12-31"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [row["segment"] for row in rows][:2] == ["champions", "loyal"]
    assert sum(int(row["customers"]) for row in rows) == 12


def test_deciles_page_and_csv_agree(ui_client, db):
    _shop(db)
    client = ui_client("sales")
    page = client.get("/analytics/deciles", params={"from": "2024-01-01", "to": "2024-12-31"})
    assert page.status_code == 200 and "デシル 1" in page.text
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get("/analytics/deciles.csv", params={"from": "2024-01-01", "to": "2024-12-31"}).text.lstrip(
                    "\ufeff"
                )
            )
        )
    )
    assert [int(r["customers"]) for r in rows] == [2, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert rows[0]["currency"] == "JPY"


def test_a_bad_period_is_explained_in_the_users_language(ui_client, db):
    client = ui_client("viewer")
    r = client.get("/analytics/deciles", params={"from": "2024-12-31", "to": "2024-01-01"})
    assert r.status_code == 422 and 'data-testid="analytics-error"' in r.text
    r = client.get("/analytics/rfm", params={"as_of": "2024-13-45"})
    assert r.status_code == 422 and "YYYY-MM-DD" in r.text


def test_every_segment_has_a_name_and_a_description_in_both_languages():
    from kizuna.analytics.rfm import SEGMENTS
    from kizuna.web.i18n import catalog

    for lang in ("ja", "en"):
        missing = [
            key
            for name in SEGMENTS
            for key in (f"analytics.segment.{name}", f"analytics.segment_hint.{name}")
            if key not in catalog(lang)
        ]
        assert missing == [], f"{lang}: {missing}"


def test_plotly_is_served_by_kizuna(ui_client):
    r = ui_client("viewer").get("/vendor/plotly.min.js")
    assert (
        r.status_code == 200 and r.headers["content-type"].startswith("text/javascript") and len(r.content) > 1_000_000
    )


@pytest.mark.browser
@pytest.mark.parametrize("width", [1400, 390])
def test_charts_are_drawn_offline_without_breaking_the_pages_csp(sign_in, live_server, db, width):
    _shop(db)
    page = sign_in("marketer")
    page.set_viewport_size({"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(f"{live_server}/lang/ja?next=/analytics/rfm%3Fas_of%3D2024-12-31")
    page.wait_for_selector("[data-drawn=true]")
    page.goto(f"{live_server}/analytics/deciles?from=2024-01-01&to=2024-12-31")
    page.wait_for_selector("[data-drawn=true]")
    assert all(url.startswith(live_server) for url in requests), [u for u in requests if not u.startswith(live_server)]
    assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 0


def test_the_rfm_page_says_when_metrics_were_computed_and_queues_a_recompute(ui_client, db):
    from kizuna.outbox.worker import run_once
    from tests.web.conftest import csrf_of

    _shop(db)
    run_once(db, limit=1000)  # the orders ask for a refresh in a minute
    viewer = ui_client("viewer").get("/analytics/rfm").text
    assert "顧客指標はまだ計算されていません" in viewer and 'data-testid="metrics-waiting"' in viewer
    assert 'data-testid="metrics-refresh"' not in viewer  # a viewer may not recompute
    assert ui_client("viewer").post("/analytics/refresh", data={"csrf_token": csrf_of(viewer)}).status_code == 403
    marketer = ui_client("marketer")
    page = marketer.get("/analytics/rfm").text
    r = marketer.post("/analytics/refresh", data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert r.status_code == 200 and "顧客指標の再計算を受け付けました" in r.text
    assert marketer.post("/analytics/refresh", data={}).status_code == 403  # no CSRF token
    run_once(db, limit=1000)
    page = marketer.get("/analytics/rfm").text
    assert "最終計算" in page and "(12 人)" in page and 'data-testid="metrics-waiting"' in page  # the daily one
