"""Tracking sources in a real Chromium: an admin creates one, reads its key once, sees its traffic, revokes it."""

from __future__ import annotations

import base64

import httpx
import pytest

pytestmark = pytest.mark.browser


def test_admin_creates_a_source_sees_its_events_and_revokes_it(live_server, sign_in) -> None:  # noqa: ANN001
    page = sign_in("admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/lang/ja?next=/admin/sources")
    page.get_by_label("名前").fill("公式サイト")
    page.get_by_role("button", name="ソースを作成").click()
    key = page.get_by_test_id("write-key").inner_text().strip()
    assert key.startswith("kzw_")
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    batch = [{"type": "track", "userId": "u1", "event": "Order Completed"}, {"type": "track", "event": "x"}]
    assert httpx.post(f"{live_server}/v1/batch", json={"batch": batch}, headers=auth).status_code == 200
    page.goto(f"{live_server}/admin/sources")
    row = page.get_by_test_id("source-row")
    assert page.get_by_test_id("write-key").count() == 0  # shown once, never again
    cells = row.locator("td")
    assert cells.nth(0).inner_text() == "公式サイト" and key[:12] in cells.nth(1).inner_text()
    assert (cells.nth(3).inner_text(), cells.nth(4).inner_text()) == ("1", "1")
    page.get_by_test_id("revoke").click()
    page.wait_for_load_state()
    assert "失効" in page.get_by_test_id("source-row").inner_text()
    r = httpx.post(f"{live_server}/v1/track", json={"userId": "u1", "event": "Again"}, headers=auth)
    assert r.status_code == 401


def test_only_admins_manage_sources(ui_client) -> None:  # noqa: ANN001
    assert ui_client("manager").get("/admin/sources").status_code == 403
    assert ui_client("admin").get("/admin/sources").status_code == 200
