"""The outbox admin page: status per subscriber, dead deliveries, retry with CSRF."""

from __future__ import annotations

from sqlalchemy import select, update

from kizuna.db import transaction
from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxDelivery
from tests.web.conftest import csrf_of


def test_admin_retries_a_dead_delivery_from_the_page(ui_client, db, probe):
    with transaction(db) as s:
        outbox.emit(s, "probe.slow", {"n": 1}, origin="ui")
        s.execute(update(OutboxDelivery).values(status="dead", attempts=10, last_error="RuntimeError: receiver 503"))
        dead_id = s.scalar(select(OutboxDelivery.id))
    c = ui_client("admin")
    page = c.get("/admin/outbox")
    assert page.status_code == 200
    assert "receiver 503" in page.text and "probe-a" in page.text
    no_csrf = c.post("/admin/outbox/retry", data={"delivery_id": dead_id}, follow_redirects=False)
    assert no_csrf.status_code in (400, 403)
    r = c.post(
        "/admin/outbox/retry",
        data={"delivery_id": dead_id, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with transaction(db) as s:
        assert s.get(OutboxDelivery, dead_id).status == "pending"


def test_the_outbox_page_is_for_admins_only(ui_client):
    assert ui_client("manager").get("/admin/outbox").status_code == 403
