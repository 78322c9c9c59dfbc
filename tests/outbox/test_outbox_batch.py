"""Batch subscribers: many deliveries handled in one transaction and marked done together; a failing batch falls
back to one delivery at a time, so one bad delivery retries alone and the others go through."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from kizuna.auth import audit
from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.outbox import registry
from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxDelivery
from kizuna.outbox.registry import Subscriber
from kizuna.outbox.worker import run_once

ACTOR = Actor.system("batch-test")


@pytest.fixture
def batch_subscriber():
    """A batch subscriber of ``batch.*`` that writes one audit row per delivery and records each call's size."""
    calls: list[int] = []

    def handle(session, deliveries):  # noqa: ANN001
        calls.append(len(deliveries))
        for d in deliveries:
            audit.record(session, actor=ACTOR, action="batch.handled", entity_type="outbox_probe", entity_id=d.key)
        if any(d.payload.get("bad") for d in deliveries):
            raise RuntimeError("a bad delivery in the batch")

    registry.register(Subscriber(name="batch-probe", topics=frozenset({"batch.*"}), handle=handle, batch=50))
    yield calls
    registry.unregister("batch-probe")


def _emit(session, count: int, bad: set[int] = frozenset()) -> None:  # noqa: ANN001
    for n in range(count):
        outbox.emit(session, "batch.item", {"n": n, "bad": n in bad})
    session.commit()


def _handled(session) -> list[str]:  # noqa: ANN001
    session.expire_all()
    return list(session.scalars(select(AuditEntry.entity_id).where(AuditEntry.action == "batch.handled")))


def test_a_small_claim_is_topped_up_to_a_full_batch_and_each_delivery_is_handled_once(session, db, batch_subscriber):
    _emit(session, 120)
    tally = run_once(db, worker="w1", limit=10)
    # 10 claimed, topped up to a batch of 50, handled in one call and one transaction.
    assert (tally.done, batch_subscriber) == (50, [50])
    while run_once(db, worker="w1", limit=10).done:
        pass
    handled = _handled(session)
    assert len(handled) == 120 and len(set(handled)) == 120
    assert batch_subscriber == [50, 50, 20]
    assert session.scalar(select(func.count()).where(OutboxDelivery.status != "done")) == 0


def test_one_bad_delivery_fails_alone_and_the_rest_of_its_batch_is_done(session, db, batch_subscriber):
    _emit(session, 30, bad={7})
    tally = run_once(db, worker="w1", limit=100)
    assert (tally.done, tally.failed) == (29, 1)
    # The failed batch wrote nothing: each delivery was then run alone, in a list of one.
    assert batch_subscriber == [30] + [1] * 30
    handled = _handled(session)
    assert len(handled) == 29 and len(set(handled)) == 29
    bad = session.scalar(select(OutboxDelivery).where(OutboxDelivery.status == "pending"))
    assert bad.attempts == 1 and "a bad delivery" in bad.last_error


def test_a_batch_subscriber_cannot_fan_out():
    with pytest.raises(ValueError, match="cannot fan out"):
        registry.register(
            Subscriber(name="x", topics=frozenset({"x"}), handle=lambda s, d: None, targets=lambda s, d: [], batch=5)
        )


def test_a_delivery_claimed_by_another_worker_is_lost_not_run(session, db, batch_subscriber):
    _emit(session, 3)
    ids = outbox.claim(session, worker="w1", limit=10)
    session.commit()
    outcomes = outbox.deliver_batch(db, worker="w2", delivery_ids=ids)
    assert [o.result for o in outcomes] == ["lost"] * 3 and batch_subscriber == []
    outcomes = outbox.deliver_batch(db, worker="w1", delivery_ids=ids)
    assert [o.result for o in outcomes] == ["done"] * 3 and batch_subscriber == [3]
