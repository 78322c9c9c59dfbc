"""In a real Chromium, on a phone, in Japanese: an admin subscribes an endpoint to an event, sees the delivery in
the log, and retries a dead one."""

from __future__ import annotations

import pytest

from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import create_customer
from kizuna.db import transaction
from tests import factories
from tests.web.conftest import make_user, sign_in  # noqa: F401 - fixtures
from tests.web.test_every_page_browser import blocking_violations, overflow
from tests.webhooks.conftest import drain

pytestmark = pytest.mark.browser


def _new_customer(db, email: str) -> None:  # noqa: ANN001
    with transaction(db) as s:
        create_customer(s, actor=factories.SYSTEM, data=CustomerCreate(email=email, family_name="山田"))


def test_an_admin_subscribes_an_endpoint_and_sees_the_delivery(live_server, sign_in, db, receiver, settings_env):  # noqa: F811
    settings_env(webhook_allow="127.0.0.1", outbox_max_attempts=1)
    page = sign_in("admin")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server}/lang/ja?next=/admin/webhooks")
    form = page.get_by_test_id("endpoint-form")
    form.locator("input[name=name]").fill("erp-sync")
    form.locator("input[name=url]").fill(receiver.url("/kizuna"))
    form.get_by_role("button").click()
    page.get_by_test_id("new-secret").wait_for()
    page.get_by_test_id("endpoint-link").first.click()
    page.wait_for_url(f"{live_server}/admin/webhooks/endpoints/*")
    subscribe = page.get_by_test_id("subscription-form")
    subscribe.get_by_label("customer.created").check()
    subscribe.get_by_role("button", name="購読する").click()
    page.wait_for_load_state()
    assert "customer.created" in page.get_by_test_id("webhook-subscriptions").inner_text()
    assert "送らない" in page.get_by_test_id("webhook-subscriptions").inner_text()  # backfill off by default

    _new_customer(db, "browser@example.jp")
    drain(db)
    page.reload()
    log = page.get_by_test_id("webhook-deliveries")
    assert log.get_by_test_id("delivery-status").first.inner_text() == "送信済み"
    assert "200" in log.inner_text() and "customer.created" in log.inner_text()
    log.locator("summary").first.click()
    assert "browser@example.jp" in log.locator("pre").first.inner_text()
    assert len(receiver.requests) == 1

    receiver.answers = [(500, {})]
    _new_customer(db, "dead@example.jp")
    drain(db)
    page.reload()
    assert log.get_by_test_id("delivery-status").first.inner_text() == "失敗（停止）"
    assert "answered 500" in log.inner_text()
    assert overflow(page)[0] <= overflow(page)[1]
    assert blocking_violations(page) == []
    log.get_by_role("button", name="再送").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("webhook-deliveries").get_by_test_id("delivery-status").first.inner_text() == "待機中"
    drain(db)
    page.reload()
    assert page.get_by_test_id("webhook-deliveries").get_by_test_id("delivery-status").first.inner_text() == "送信済み"
    keys = [r.headers["idempotency-key"] for r in receiver.requests]
    assert len(keys) == 3 and keys[1] == keys[2]
