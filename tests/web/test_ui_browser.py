"""The UI in a real Chromium: what a user does, click by click."""

from __future__ import annotations

import os
import re

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy.engine import Engine

from kizuna.customers import service as customers
from kizuna.customers.schemas import CustomerUpdate
from kizuna.db import transaction
from tests import factories
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.browser
SCREENSHOTS = os.environ.get("KIZUNA_UI_SCREENSHOTS")  # a folder: save screenshots of the main pages there


def seed_customer_360(engine: Engine) -> int:
    """One customer with a touchpoint of every kind, on distinct days."""
    with transaction(engine) as s:
        factories.product(s, sku="TEA-01", name="Uji Matcha 100g", price=2400)
        factories.product(s, sku="CUP-02", name="Arita Teacup", price=3800)
        c = factories.customer(
            s,
            family_name="佐藤",
            given_name="花子",
            family_name_kana="さとう",
            given_name_kana="はなこ",
            email="hanako@example.jp",
            phone="090-1234-5678",
            postal_code="150-0001",
            prefecture="東京都",
            city="渋谷区",
            address_line="神宮前1-2-3",
            lifecycle_stage="customer",
            tags=["vip", "tea"],
        )
        # create_customer does not take attributes or timezone yet (they clash with its defaults): set them after.
        customers.update_customer(
            s,
            actor=factories.SYSTEM,
            customer_id=c.id,
            data=CustomerUpdate(attributes={"favorite_store": "表参道"}, timezone="Asia/Tokyo"),
            expected_version=None,
        )
        factories.consent(
            s,
            customer_id=c.id,
            channel="email",
            recorded_at=factories.at("2024-01-05T01:00:00"),
            evidence="signup form v2",
        )
        factories.order(
            s,
            customer_id=c.id,
            external_id="ORD-1001",
            ordered_at=factories.at("2024-02-10T03:00:00"),
            channel="online",
            lines=[{"sku": "TEA-01", "quantity": 2, "unit_price": 2400}, {"sku": "CUP-02", "unit_price": 3800}],
        )
        factories.event(
            s,
            customer_id=c.id,
            type="store_visit",
            channel="store",
            occurred_at=factories.at("2024-03-01T05:30:00"),
            properties={"store": "表参道"},
        )
        return c.id


def test_sign_in_shows_error_for_wrong_password_then_succeeds(live_server, page, make_user):
    email = make_user("admin")
    page.goto(f"{live_server}/customers")
    assert "/login?next=%2Fcustomers" in page.url
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_be_visible()
    assert "/login" in page.url
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/customers$"))
    assert page.locator("h1").inner_text() == "顧客"


def test_switching_language_changes_visible_labels(sign_in):
    page = sign_in("admin")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("nav.sidenav").inner_text().startswith("マイページ\n顧客")
    page.get_by_test_id("lang-en").click()
    page.wait_for_url(re.compile(r".*/customers$"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Customers"
    assert "Companies" in page.locator("nav.sidenav").inner_text()
    page.get_by_test_id("lang-ja").click()
    assert page.locator("h1").inner_text() == "顧客"


def test_customer_list_search_by_kana_and_email_and_filter_by_tag(sign_in, live_server, db):
    with transaction(db) as s:
        factories.customer(
            s, family_name_kana="ヤマダ", given_name_kana="タロウ", email="taro@example.jp", tags=["vip"]
        )
        factories.customer(s, family_name="鈴木", given_name="一郎", email="ichiro@example.com", phone="03-1234-5678")
    page = sign_in("viewer")
    rows = page.get_by_test_id("customer-table").locator("tbody tr")
    assert rows.count() == 2
    assert "03-1234-5678" in page.get_by_test_id("customer-table").inner_text()

    page.fill("form[data-testid=customer-filters] input[name=q]", "やまだ")  # hiragana finds katakana
    page.click("form[data-testid=customer-filters] button[type=submit]")
    page.wait_for_url(re.compile(r".*q=.*"))
    assert rows.count() == 1 and "ヤマダ タロウ" in rows.first.inner_text()

    page.fill("form[data-testid=customer-filters] input[name=q]", "ichiro@example.com")
    page.click("form[data-testid=customer-filters] button[type=submit]")
    page.wait_for_url(re.compile(r".*ichiro.*"))
    assert rows.count() == 1 and "鈴木 一郎" in rows.first.inner_text()

    page.goto(f"{live_server}/customers")
    page.fill("input[name=tag]", "vip")
    page.click("form[data-testid=customer-filters] button[type=submit]")
    page.wait_for_url(re.compile(r".*tag=vip.*"))
    assert rows.count() == 1 and "taro@example.jp" in rows.first.inner_text()
    assert page.get_by_test_id("export-csv").count() == 0  # a viewer may not export


def test_customer_360_shows_everything_and_a_new_note_tops_the_timeline(sign_in, live_server, db):
    customer_id = seed_customer_360(db)
    page = sign_in("admin")
    if SCREENSHOTS:
        page.set_viewport_size({"width": 1360, "height": 900})
        page.screenshot(path=f"{SCREENSHOTS}/customers-ja.png", full_page=True)
    page.goto(f"{live_server}/customers/{customer_id}")
    assert page.get_by_test_id("customer-name").inner_text() == "佐藤 花子"
    assert page.get_by_test_id("customer-kana").inner_text() == "サトウ ハナコ"
    attributes = page.get_by_test_id("attributes").inner_text()
    for text in ("hanako@example.jp", "090-1234-5678", "東京都渋谷区神宮前1-2-3", "Asia/Tokyo", "表参道"):
        assert text in attributes
    consents = page.get_by_test_id("consents").inner_text()
    assert "同意あり" in consents and "signup form v2" in consents
    orders = page.get_by_test_id("orders").inner_text()
    for text in ("ORD-1001", "TEA-01", "Uji Matcha 100g", "Arita Teacup", "¥8,600", "¥4,800"):
        assert text in orders
    assert "hanako@example.jp" in page.get_by_test_id("identities").inner_text()

    kinds = page.locator("ol.timeline li.tl-item").evaluate_all("items => items.map(i => i.dataset.kind)")
    assert kinds == ["event", "order", "consent"]  # newest first
    first_time = page.locator("ol.timeline li.tl-item time").first.inner_text()
    assert first_time == "2024-03-01 14:30 Asia/Tokyo"

    page.fill("form[data-testid=note-form] textarea", "電話で新商品を案内した")
    page.click("form[data-testid=note-form] button[type=submit]")
    page.wait_for_url(re.compile(rf".*/customers/{customer_id}#timeline"))
    first = page.locator("ol.timeline li.tl-item").first
    assert first.get_attribute("data-kind") == "note"
    assert "電話で新商品を案内した" in first.inner_text()
    if SCREENSHOTS:
        page.screenshot(path=f"{SCREENSHOTS}/customer-360-ja.png", full_page=True)


def test_viewer_sees_no_note_form_and_a_forged_post_is_refused(sign_in, live_server, db):
    with transaction(db) as s:
        customer_id = factories.customer(s).id
    page = sign_in("viewer")
    page.goto(f"{live_server}/customers/{customer_id}")
    assert page.get_by_test_id("notes").is_visible()
    assert page.get_by_test_id("note-form").count() == 0
    # A cross-site form post carries the cookie but cannot know the session's CSRF token.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    r = httpx.post(f"{live_server}/customers/{customer_id}/notes", data={"body": "forged"}, cookies=cookies)
    assert r.status_code == 403


def test_audit_log_is_for_admins_only(sign_in, live_server, make_user):
    page = sign_in("marketer")
    assert page.locator("a[href='/admin/audit']").count() == 0
    response = page.goto(f"{live_server}/admin/audit")
    assert response.status == 403
    assert page.get_by_test_id("error-message").is_visible()


def test_api_token_is_shown_once_and_works_against_the_api(sign_in, live_server):
    page = sign_in("viewer")
    page.goto(f"{live_server}/settings/tokens")
    page.fill("form[data-testid=token-form] input[name=name]", "shop sync")
    page.click("form[data-testid=token-form] button[type=submit]")
    token = page.get_by_test_id("new-token-value").input_value()
    assert token.startswith("kz_")
    r = httpx.get(f"{live_server}/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "items" in r.json()

    page.goto(f"{live_server}/settings/tokens")
    assert page.get_by_test_id("new-token").count() == 0
    assert token not in page.content()
    assert "shop sync" in page.get_by_test_id("tokens-table").inner_text()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("tokens-table").locator("button.danger").click()
    page.wait_for_load_state()
    assert "shop sync" not in page.get_by_test_id("tokens-table").inner_text()
    r = httpx.get(f"{live_server}/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
