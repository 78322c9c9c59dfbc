"""``/api/v1/webhooks`` (subscriptions, events, deliveries, retry), ``kizuna webhooks ...`` and a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select, update

from kizuna.auth.models import AuditEntry
from kizuna.outbox.models import OutboxDelivery
from tests.cli import kizuna as run_kizuna
from tests.webhooks.conftest import drain

ROOT = Path(__file__).resolve().parents[2]


def _endpoint(client, url: str) -> int:  # noqa: ANN001
    r = client.post("/api/v1/webhooks/endpoints", json={"name": "erp", "url": url})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_an_admin_subscribes_and_reads_the_log_through_the_api(db, session, client_as, receiver, allow_loopback):
    api = client_as("admin")
    assert {e["name"] for e in api.get("/api/v1/webhooks/events").json()} >= {
        "customer.created", "customer.updated", "customer.merged", "segment.entered", "segment.exited",
        "order.completed",
    }  # fmt: skip
    endpoint_id = _endpoint(api, receiver.url())
    r = api.post("/api/v1/webhooks/subscriptions", json={"endpoint_id": endpoint_id, "events": ["customer.created"]})
    assert r.status_code == 201 and r.json()["include_backfill"] is False
    subscription_id = r.json()["id"]
    r = api.post("/api/v1/customers", json={"email": "api@example.jp", "family_name": "鈴木"})
    assert r.status_code == 201, r.text
    drain(db)
    page = api.get("/api/v1/webhooks/deliveries", params={"endpoint_id": endpoint_id}).json()
    (item,) = page["items"]
    assert item["status"] == "delivered" and item["response_status"] == 200 and item["latency_ms"] is not None
    assert json.loads(item["payload"])["data"]["customer"]["family_name"] == "鈴木"
    assert item["idempotency_key"] == receiver.requests[0].headers["idempotency-key"]
    r = api.patch(f"/api/v1/webhooks/subscriptions/{subscription_id}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    # A delivered delivery is not retried by hand.
    assert api.post(f"/api/v1/webhooks/deliveries/{item['id']}/retry").status_code == 409
    actions = set(session.scalars(select(AuditEntry.action)))
    assert {"webhook.subscription.create", "webhook.subscription.update"} <= actions


def test_bad_input_is_refused_with_the_reason(db, client_as):
    api = client_as("admin")
    endpoint_id = _endpoint(api, "https://93.184.215.14/hook")
    r = api.post("/api/v1/webhooks/subscriptions", json={"endpoint_id": endpoint_id, "events": ["order.shipped"]})
    assert r.status_code == 422 and "unknown event order.shipped" in r.text
    r = api.post("/api/v1/webhooks/subscriptions", json={"endpoint_id": 999, "events": ["order.completed"]})
    assert r.status_code == 404
    assert api.get("/api/v1/webhooks/deliveries", params={"status": "lost"}).status_code == 422


def test_only_admins_manage_webhooks(db, client_as):
    for role in ("manager", "marketer", "viewer"):
        api = client_as(role)
        assert api.get("/api/v1/webhooks/subscriptions").status_code == 403
        assert api.get("/api/v1/webhooks/deliveries").status_code == 403
        assert api.post("/api/v1/webhooks/deliveries/1/retry").status_code == 403


def _env(db) -> dict[str, str]:  # noqa: ANN001
    return {
        **os.environ,
        "KIZUNA_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "KIZUNA_WEBHOOK_ALLOW": "127.0.0.1",
        "KIZUNA_OUTBOX_MAX_ATTEMPTS": "1",
        "PYTHONPATH": str(ROOT),
    }


def test_a_worker_process_delivers_and_the_cli_lists_and_retries(db, client_as, receiver, allow_loopback):
    env = _env(db)
    api = client_as("admin")
    endpoint_id = _endpoint(api, receiver.url())
    api.post("/api/v1/webhooks/subscriptions", json={"endpoint_id": endpoint_id, "events": ["customer.created"]})
    receiver.answers = [(500, {})]
    worker = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "worker", "--poll", "0.05"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert "worker running" in worker.stdout.readline().decode()
        r = api.post("/api/v1/customers", json={"email": "w1@example.jp"})
        assert r.status_code == 201, r.text
        _wait(lambda: len(receiver.requests) == 1 and _dead(db) == 1, worker=worker)
        api.post("/api/v1/customers", json={"email": "w2@example.jp"})
        _wait(lambda: len(receiver.requests) == 2)

        def kizuna(*args: str) -> subprocess.CompletedProcess[str]:
            return run_kizuna("webhooks", *args, engine=db)

        listed = kizuna("list", "--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = json.loads(listed.stdout)
        assert row["endpoint"] == "erp" and row["subscriptions"][0]["events"] == ["customer.created"]
        dead = json.loads(kizuna("deliveries", "--status", "dead", "--json").stdout)
        assert len(dead) == 1 and "answered 500" in dead[0]["last_error"]
        retried = kizuna("retry", "--delivery", str(dead[0]["id"]))
        assert retried.returncode == 0, retried.stderr
        _wait(lambda: len(receiver.requests) == 3)
        keys = [r.headers["idempotency-key"] for r in receiver.requests]
        assert keys[0] == keys[2] != keys[1]  # the retry went out under the dead delivery's key
        assert kizuna("retry", "--delivery", str(dead[0]["id"])).returncode in (0, 2)
        assert kizuna("deliveries", "--endpoint", "nope").returncode != 0
    finally:
        worker.terminate()
        worker.wait(15)


def _dead(db) -> int:  # noqa: ANN001
    from kizuna.db import new_session

    with new_session(db) as s:
        return len(list(s.scalars(select(OutboxDelivery.id).where(OutboxDelivery.status == "dead"))))


def _wait(predicate, seconds: float = 20, worker: subprocess.Popen | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            said = ""
            if worker is not None:
                worker.terminate()
                said = worker.stderr.read().decode()[-3000:]
            raise AssertionError(f"the worker did not deliver in time {said}")
        time.sleep(0.05)


def test_back_off_is_visible_in_the_api(db, session, client_as, receiver, allow_loopback):
    api = client_as("admin")
    endpoint_id = _endpoint(api, receiver.url())
    api.post("/api/v1/webhooks/subscriptions", json={"endpoint_id": endpoint_id, "events": ["customer.created"]})
    receiver.answers = [(503, {})]
    api.post("/api/v1/customers", json={"email": "b@example.jp"})
    drain(db)
    (item,) = api.get("/api/v1/webhooks/deliveries").json()["items"]
    assert item["status"] == "retrying" and item["response_status"] == 503 and item["next_attempt_at"]
    session.execute(update(OutboxDelivery).values(available_at=OutboxDelivery.created_at))
    session.commit()
    drain(db)
    (item,) = api.get("/api/v1/webhooks/deliveries").json()["items"]
    assert item["status"] == "delivered" and item["attempts"] == 2
