"""Domain events land in the outbox with the change that caused them and are delivered once by the worker."""

from __future__ import annotations

from sqlalchemy import select

from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxMessage
from kizuna.outbox.worker import run_once
from tests import factories


def test_customer_created_event_is_written_with_the_customer_and_delivered_once(session, db):
    seen: list[int] = []
    outbox.subscribe("customer.created", lambda s, m: seen.append(m.payload["customer_id"]))
    try:
        c = factories.customer(session, email="o@example.jp")
        session.commit()
        assert run_once(db, worker="w1") >= 1
        assert run_once(db, worker="w2") == 0
    finally:
        outbox._HANDLERS["customer.created"].pop()
    assert seen == [c.id]
    session.expire_all()
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "customer.created"))
    assert row.delivered_at is not None


def test_rolled_back_change_leaves_no_event(session):
    factories.customer(session, email="gone@example.jp")
    session.rollback()
    assert session.scalar(select(OutboxMessage.id)) is None


def test_failing_handler_is_retried_later_not_lost(session, db):
    def broken(s, m):
        raise RuntimeError("mail server down")

    outbox.subscribe("customer.created", broken)
    try:
        factories.customer(session, email="retry@example.jp")
        session.commit()
        assert run_once(db, worker="w1") == 0
    finally:
        outbox._HANDLERS["customer.created"].pop()
    session.expire_all()
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "customer.created"))
    assert row.delivered_at is None
    assert row.attempts == 1
    assert "mail server down" in row.last_error
