"""Administration in a real Chromium: an admin changes a user's role and deactivates them, on a phone in Japanese."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kizuna.auth.models import User
from kizuna.db import new_session
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_admin_changes_a_role_then_deactivates_the_user_who_can_then_not_sign_in(live_server, sign_in, make_user, db):
    email = make_user("sales", "eigyo@example.com", name="営業 花子")
    page = sign_in("admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/lang/ja?next=/admin/users")
    page.get_by_role("link", name="営業 花子").click()
    page.get_by_label("ロール", exact=True).select_option("manager")
    page.get_by_test_id("change-role").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("user-role").inner_text() == "マネージャー"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("deactivate").click()
    page.get_by_test_id("reactivate").wait_for()
    assert page.get_by_test_id("user-state").inner_text() == "無効"
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    s = new_session(db)
    try:
        user = s.scalar(select(User).where(User.email == email))
        assert (user.role, user.is_active) == ("manager", False)
    finally:
        s.close()

    page.goto(f"{live_server}/admin/audit?entity_type=user&entity_id={user.id}")
    rows = page.get_by_test_id("audit-row")
    assert "ユーザーを無効化" in rows.nth(0).inner_text()
    assert "ロール変更" in rows.nth(1).inner_text()
    assert "user." not in rows.nth(0).inner_text()  # no raw action codes in the Japanese UI

    other = page.context.browser.new_context(locale="ja-JP")
    try:
        them = other.new_page()
        them.goto(f"{live_server}/login")
        them.fill("input[name=email]", email)
        them.fill("input[name=password]", PASSWORD)
        them.click("button[type=submit]")
        them.wait_for_load_state()
        assert "/login" in them.url and them.locator(".alert-error").count() == 1
    finally:
        other.close()
