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


def test_two_workers_never_claim_the_same_message_and_a_dead_workers_lease_expires(session, db):
    from kizuna.db import new_session

    for n in range(4):
        factories.customer(session, email=f"w{n}@example.jp")
    session.commit()
    first, second = new_session(db), new_session(db)
    try:
        mine = outbox.claim(first, worker="alive", limit=2)
        first.commit()
        theirs = outbox.claim(second, worker="other", limit=10)
        second.commit()
        assert len(mine) == 2 and len(theirs) == 2
        assert not {m.id for m in mine} & {m.id for m in theirs}
        # "alive" dies without delivering: once its lease runs out, another worker takes its messages.
        dead = outbox.claim(first, worker="dies", limit=10, lease_seconds=0)
        first.commit()
        assert dead == []
        for m in mine:
            m.locked_until = m.created_at
        first.commit()
        retaken = outbox.claim(second, worker="other", limit=10)
        assert {m.id for m in retaken} == {m.id for m in mine}
    finally:
        first.close()
        second.close()
