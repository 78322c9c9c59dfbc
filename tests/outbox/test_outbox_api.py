"""Admins see the outbox and retry dead deliveries over the API; nobody else may."""

from __future__ import annotations

from sqlalchemy import update

from kizuna.db import transaction, utcnow
from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxDelivery
from kizuna.outbox.worker import run_once


def _one_dead_delivery(db) -> int:  # noqa: ANN001
    with transaction(db) as s:
        outbox.emit(s, "probe.slow", {"n": 1, "url": "http://127.0.0.1:9/closed"}, origin="api")
    run_once(db, worker="w")  # the POST to a closed port fails
    with transaction(db) as s:
        s.execute(update(OutboxDelivery).values(status="dead"))
        return s.scalar(OutboxDelivery.__table__.select().with_only_columns(OutboxDelivery.id))


def test_admin_sees_status_and_dead_deliveries_and_retries_one(client, db, probe):
    dead_id = _one_dead_delivery(db)
    status = {r["subscriber"]: r for r in client.get("/api/v1/outbox/status").json()}
    assert status["probe-a"]["dead"] == 1 and status["probe-a"]["declared"] is True
    dead = client.get("/api/v1/outbox/deliveries", params={"status": "dead"}).json()
    assert [(d["id"], d["topic"], d["origin"]) for d in dead] == [(dead_id, "probe.slow", "api")]
    assert "ConnectError" in dead[0]["last_error"]

    r = client.post("/api/v1/outbox/retry", json={"delivery_ids": [dead_id]})
    assert r.status_code == 200 and r.json() == {"retried": 1}
    status = {r["subscriber"]: r for r in client.get("/api/v1/outbox/status").json()}
    assert status["probe-a"]["dead"] == 0 and status["probe-a"]["due"] == 1
    assert client.post("/api/v1/outbox/retry", json={"delivery_ids": [dead_id + 999]}).status_code == 404


def test_only_admins_manage_the_outbox(client_as, db):
    for role in ("manager", "marketer", "viewer"):
        c = client_as(role)
        assert c.get("/api/v1/outbox/status").status_code == 403
        assert c.post("/api/v1/outbox/retry", json={}).status_code == 403


def test_scheduled_delivery_is_not_due_yet(client, db, probe):
    with transaction(db) as s:
        outbox.emit(s, "probe.slow", {}, origin="api", available_at=utcnow().replace(year=utcnow().year + 1))
    status = {r["subscriber"]: r for r in client.get("/api/v1/outbox/status").json()}
    assert (status["probe-a"]["scheduled"], status["probe-a"]["due"]) == (1, 0)
