"""Domain events reach a real local receiver: signed, once per Idempotency-Key, retried, dead, retried by hand."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from sqlalchemy import select, update

from kizuna.auth.models import AuditEntry
from kizuna.customers.schemas import CustomerCreate, CustomerUpdate
from kizuna.customers.service import create_customer, update_customer
from kizuna.messaging.webhook import verify
from kizuna.outbox.models import OutboxDelivery
from kizuna.webhooks import service
from kizuna.webhooks.models import WebhookDelivery
from tests.webhooks.conftest import drain, subscribe


def _keys(receiver) -> Counter:  # noqa: ANN001
    return Counter(r.headers["idempotency-key"] for r in receiver.requests)


def test_a_created_customer_reaches_the_receiver_signed(db, session, admin, receiver, allow_loopback):
    _, secret = subscribe(session, admin, receiver.url("/in"), ["customer.created"])
    customer = create_customer(
        session, actor=admin, data=CustomerCreate(email="hanako@example.jp", family_name="山田", given_name="花子")
    )
    session.commit()
    drain(db)
    (request,) = receiver.requests
    assert verify(secret, request.body, request.headers["x-kizuna-signature"])
    body = json.loads(request.body)
    assert body["type"] == "customer.created" and body["version"] == 1 and body["backfill"] is False
    assert body["data"]["customer"]["email"] == "hanako@example.jp"
    assert body["data"]["customer"]["family_name"] == "山田"
    assert body["data"]["customer_id"] == customer.id
    assert request.headers["x-kizuna-event"] == "customer.created"
    (view,) = service.list_deliveries(session, actor=admin)
    assert view.status == "delivered" and view.response_status == 200 and view.attempts == 1
    assert view.idempotency_key == request.headers["idempotency-key"]


def test_only_subscribed_events_are_sent(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["customer.updated"])
    customer = create_customer(session, actor=admin, data=CustomerCreate(email="a@example.jp"))
    session.commit()
    update_customer(
        session, actor=admin, customer_id=customer.id, data=CustomerUpdate(city="京都市"), expected_version=None
    )
    session.commit()
    drain(db)
    assert [json.loads(r.body)["type"] for r in receiver.requests] == ["customer.updated"]
    assert json.loads(receiver.requests[0].body)["data"]["changed_fields"] == ["city"]


def test_failure_then_recovery_with_back_off_keeps_one_key(db, session, admin, receiver, allow_loopback):
    receiver.answers = [(500, {}), (503, {})]
    subscribe(session, admin, receiver.url(), ["customer.created"])
    create_customer(session, actor=admin, data=CustomerCreate(email="b@example.jp"))
    session.commit()
    tally = drain(db)
    assert tally.failed == 1 and len(receiver.requests) == 1
    (view,) = service.list_deliveries(session, actor=admin)
    assert view.status == "retrying" and view.response_status == 500 and "answered 500" in (view.last_error or "")
    # Backed off: not due now, due in about 2 s.
    assert view.next_attempt_at is not None
    wait = view.next_attempt_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=0) < wait <= dt.timedelta(seconds=3)
    assert drain(db).failed == 0 and len(receiver.requests) == 1
    for expected_failures in (1, 0):
        session.execute(update(OutboxDelivery).values(available_at=dt.datetime.now(dt.UTC)))
        session.commit()
        assert drain(db).failed == expected_failures
    assert len(receiver.requests) == 3
    assert len(_keys(receiver)) == 1  # every attempt under the same Idempotency-Key
    assert len({r.body for r in receiver.requests}) == 1  # and the same body
    session.expire_all()
    (view,) = service.list_deliveries(session, actor=admin)
    assert view.status == "delivered" and view.attempts == 3 and view.last_error is None


def test_dead_after_the_attempts_then_retried_by_hand(db, session, admin, receiver, allow_loopback, settings_env):
    settings_env(webhook_allow="127.0.0.1,::1", outbox_max_attempts=2)
    receiver.answers = [(500, {})] * 2
    subscribe(session, admin, receiver.url(), ["customer.created"])
    create_customer(session, actor=admin, data=CustomerCreate(email="c@example.jp"))
    session.commit()
    drain(db)
    session.execute(update(OutboxDelivery).values(available_at=dt.datetime.now(dt.UTC)))
    session.commit()
    assert drain(db).dead == 1
    (view,) = service.list_deliveries(session, actor=admin, status="dead")
    assert view.attempts == 2 and "answered 500" in (view.last_error or "")
    retried = service.retry_delivery(session, actor=admin, delivery_id=view.id)
    session.commit()
    assert retried.status == "pending"
    drain(db)
    session.expire_all()
    assert service.get_delivery(session, actor=admin, delivery_id=view.id).status == "delivered"
    assert len(receiver.requests) == 3 and len(_keys(receiver)) == 1
    actions = list(session.scalars(select(AuditEntry.action)))
    assert "webhook.delivery.retry" in actions


def test_a_refusal_goes_dead_at_once_but_slow_down_is_retried(db, session, admin, receiver, allow_loopback):
    """A 410 or 422 says the request itself is refused: no back-off schedule of a day for it. A 429 is retried."""
    receiver.answers = [(429, {}), (422, {})]
    subscribe(session, admin, receiver.url(), ["customer.created"])
    create_customer(session, actor=admin, data=CustomerCreate(email="r1@example.jp"))
    session.commit()
    assert drain(db).failed == 1
    (view,) = service.list_deliveries(session, actor=admin)
    assert view.status == "retrying" and view.response_status == 429
    session.execute(update(OutboxDelivery).values(available_at=dt.datetime.now(dt.UTC)))
    session.commit()
    assert drain(db).dead == 1
    session.expire_all()
    (view,) = service.list_deliveries(session, actor=admin, status="dead")
    assert view.attempts == 2 and view.response_status == 422
    assert "answered 422" in (view.last_error or "") and "not retried" in (view.last_error or "")
    # Fixed on the receiver's side: a retry by hand sends the same key and body, and it arrives.
    service.retry_delivery(session, actor=admin, delivery_id=view.id)
    session.commit()
    drain(db)
    session.expire_all()
    assert service.get_delivery(session, actor=admin, delivery_id=view.id).status == "delivered"
    assert len(receiver.requests) == 3 and len(_keys(receiver)) == 1


def test_log_rows_hold_the_body_fixed_at_fan_out(db, session, admin, receiver, allow_loopback):
    subscribe(session, admin, receiver.url(), ["customer.created"])
    create_customer(session, actor=admin, data=CustomerCreate(email="d@example.jp"))
    session.commit()
    drain(db)
    (row,) = session.scalars(select(WebhookDelivery))
    assert row.body.encode() == receiver.requests[0].body
