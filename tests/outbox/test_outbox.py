"""The outbox: messages written with the change, one delivery per subscriber, each retried and leased alone."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select, update

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.db import new_session, transaction, utcnow
from kizuna.errors import PermissionDenied
from kizuna.outbox import registry
from kizuna.outbox import service as outbox
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.outbox.registry import Subscriber
from kizuna.outbox.worker import run_once
from tests import factories

ADMIN = Actor.system("test")


@pytest.fixture
def declared():
    """Declare subscribers for one test; forgotten afterwards."""
    names: list[str] = []

    def declare(name: str, *topics: str, handle, targets=None, max_attempts=None) -> Subscriber:  # noqa: ANN001
        s = Subscriber(name=name, topics=frozenset(topics), handle=handle, targets=targets, max_attempts=max_attempts)
        registry.register(s)
        names.append(name)
        return s

    yield declare
    for name in names:
        registry.unregister(name)


def handled(session, key_prefix: str = "") -> list[str]:  # noqa: ANN001
    session.expire_all()
    keys = session.scalars(select(AuditEntry.entity_id).where(AuditEntry.entity_type == "outbox_probe"))
    return sorted(k for k in keys if k.startswith(key_prefix))


def test_customer_created_is_delivered_once_to_each_subscriber_with_a_stable_key(session, db, declared):
    seen: dict[str, list] = {"a": [], "b": []}
    declared("a", "customer.created", handle=lambda s, d: seen["a"].append((d.payload["customer_id"], d.key)))
    declared("b", "customer.*", handle=lambda s, d: seen["b"].append((d.payload["customer_id"], d.key)))
    c = factories.customer(session, email="o@example.jp")
    session.commit()
    assert run_once(db, worker="w1").done == 2
    assert run_once(db, worker="w2").done == 0
    message_id = session.scalar(select(OutboxMessage.id).where(OutboxMessage.topic == "customer.created"))
    assert seen == {"a": [(c.id, f"kizuna-{message_id}-a")], "b": [(c.id, f"kizuna-{message_id}-b")]}
    statuses = session.scalars(select(OutboxDelivery.status).where(OutboxDelivery.message_id == message_id))
    assert sorted(statuses) == ["done", "done"]


def test_rolled_back_change_leaves_no_message_and_no_delivery(session, declared):
    declared("a", "customer.created", handle=lambda s, d: None)
    factories.customer(session, email="gone@example.jp")
    session.rollback()
    assert session.scalar(select(OutboxMessage.id)) is None
    assert session.scalar(select(OutboxDelivery.id)) is None


def test_a_failing_subscriber_retries_alone_with_back_off_and_its_error(session, db, declared):
    calls: list[str] = []

    def broken(s, d):  # noqa: ANN001
        raise RuntimeError("mail server down")

    declared("mail", "customer.created", handle=broken)
    declared("crm-sync", "customer.created", handle=lambda s, d: calls.append(d.key))
    factories.customer(session, email="retry@example.jp")
    session.commit()
    tally = run_once(db, worker="w1")
    assert (tally.done, tally.failed) == (1, 1)
    assert run_once(db, worker="w1").done == 0  # backing off
    session.expire_all()
    mail = session.scalar(select(OutboxDelivery).where(OutboxDelivery.subscriber == "mail"))
    assert mail.status == "pending" and mail.attempts == 1 and "mail server down" in mail.last_error
    assert mail.available_at > utcnow()
    assert len(calls) == 1


def test_a_delivery_dies_after_its_attempts_and_an_admin_can_retry_it(session, db, declared):
    state = {"up": False}

    def flaky(s, d):  # noqa: ANN001
        if not state["up"]:
            raise RuntimeError("receiver answers 503")

    declared("flaky", "customer.created", handle=flaky, max_attempts=2)
    factories.customer(session, email="dead@example.jp")
    session.commit()
    for _ in range(2):
        run_once(db, worker="w")
        session.execute(update(OutboxDelivery).values(available_at=utcnow()))  # skip the back-off wait
        session.commit()
    session.expire_all()
    row = session.scalar(select(OutboxDelivery))
    assert row.status == "dead" and row.attempts == 2 and "503" in row.last_error
    status = {s.subscriber: s for s in outbox.status(session, actor=ADMIN)}
    assert status["flaky"].dead == 1 and status["flaky"].due == 0
    assert [d.id for d, _ in outbox.list_deliveries(session, actor=ADMIN)] == [row.id]
    assert run_once(db, worker="w").done == 0  # dead stays dead

    with pytest.raises(PermissionDenied):
        outbox.retry(session, actor=Actor(label="m", role="manager"), delivery_ids=[row.id])
    assert outbox.retry(session, actor=ADMIN, delivery_ids=[row.id]) == 1
    session.commit()
    state["up"] = True
    assert run_once(db, worker="w").done == 1
    audit_row = session.scalar(select(AuditEntry).where(AuditEntry.action == "outbox.retry"))
    assert audit_row.details["deliveries"] == 1


def test_a_message_without_subscribers_is_kept_and_a_later_subscriber_sees_only_later_messages(session, db, declared):
    factories.customer(session, email="early@example.jp")
    session.commit()
    assert run_once(db, worker="w").done == 0
    assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1  # history, not "delivered"
    seen: list[int] = []
    declared("late", "customer.created", handle=lambda s, d: seen.append(d.payload["customer_id"]))
    later = factories.customer(session, email="later@example.jp")
    session.commit()
    assert run_once(db, worker="w").done == 1
    assert seen == [later.id]


def test_emit_schedules_a_message_for_later(session, db, declared):
    seen: list[str] = []
    declared("waits", "journey.wake", handle=lambda s, d: seen.append(d.payload["step"]))
    soon = utcnow() + dt.timedelta(seconds=1)
    outbox.emit(session, "journey.wake", {"step": "after-wait"}, available_at=soon, origin="worker")
    session.commit()
    assert run_once(db, worker="w").done == 0
    status = {s.subscriber: s for s in outbox.status(session, actor=ADMIN)}
    assert status["waits"].scheduled == 1
    time.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.05)
    assert run_once(db, worker="w").done == 1
    assert seen == ["after-wait"]


def test_fan_out_gives_each_target_its_own_delivery_and_a_failing_target_retries_alone(session, db, probe, receiver):
    outbox.emit(
        session, "probe.ping", {"targets": ["hook-1", "hook-2", "hook-3"], "fail_target": "hook-2"}, origin="api"
    )
    session.commit()
    first = run_once(db, worker="w")  # probe-a, probe-b, and probe-fan's own delivery (which fans out)
    second = run_once(db, worker="w")  # the three targets
    assert first.done == 3
    assert (second.done, second.failed) == (2, 1)
    session.expire_all()
    rows = session.execute(
        select(OutboxDelivery.target, OutboxDelivery.status).where(OutboxDelivery.subscriber == "probe-fan")
    ).all()
    assert sorted(rows) == [("", "done"), ("hook-1", "done"), ("hook-2", "pending"), ("hook-3", "done")]
    keys = handled(session, "kizuna-")
    assert [k.rsplit("-", 2)[-2:] for k in keys if "probe-fan" in k] == [["hook", "1"], ["hook", "3"]]


def test_a_worker_that_lost_its_lease_neither_runs_nor_marks_the_delivery(session, db, declared):
    seen: list[str] = []
    declared("once", "customer.created", handle=lambda s, d: seen.append(d.key))
    factories.customer(session, email="lease@example.jp")
    session.commit()
    with transaction(db) as s:
        [mine] = outbox.claim(s, worker="slow", lease_seconds=0)
    with transaction(db) as s:
        [theirs] = outbox.claim(s, worker="fast")
    assert mine == theirs
    assert outbox.deliver(db, worker="slow", delivery_id=mine).result == "lost"
    assert outbox.deliver(db, worker="fast", delivery_id=theirs).result == "done"
    assert outbox.deliver(db, worker="fast", delivery_id=theirs).result == "lost"
    assert len(seen) == 1
    session.expire_all()
    assert session.get(OutboxDelivery, mine).attempts == 2


def test_a_handler_running_past_its_lease_is_not_started_again(session, db, declared):
    started: list[str] = []
    release = threading.Event()

    def slow(s, d):  # noqa: ANN001
        started.append(d.key)
        release.wait(5)

    declared("slow", "customer.created", handle=slow)
    factories.customer(session, email="slow@example.jp")
    session.commit()
    with transaction(db) as s:
        [claimed] = outbox.claim(s, worker="A", lease_seconds=0)  # the lease has run out at once
    results: list[str] = []
    a = threading.Thread(target=lambda: results.append(outbox.deliver(db, worker="A", delivery_id=claimed).result))
    a.start()
    while not started:
        time.sleep(0.01)
    # B tries while A's handler runs: on PostgreSQL the row is locked (skipped), on SQLite B waits for A's lock.
    b_result: list[int] = []
    b = threading.Thread(target=lambda: b_result.append(run_once(db, worker="B").done))
    b.start()
    time.sleep(0.3)
    release.set()
    a.join(10)
    b.join(20)
    assert results == ["done"]
    assert b_result == [0]
    assert len(started) == 1


def test_claims_are_disjoint_and_a_dead_workers_deliveries_are_retaken_after_its_lease(session, db, declared):
    declared("count", "customer.created", handle=lambda s, d: None)
    for n in range(4):
        factories.customer(session, email=f"w{n}@example.jp")
    session.commit()
    first, second = new_session(db), new_session(db)
    try:
        mine = outbox.claim(first, worker="dies", limit=2, lease_seconds=0)
        first.commit()
        theirs = outbox.claim(second, worker="other", limit=10)
        second.commit()
        # "dies" held two with a lease that has already run out, so "other" took all four.
        assert set(mine) <= set(theirs) and len(theirs) == 4
    finally:
        first.close()
        second.close()


def test_origin_and_occurred_at_are_recorded(session):
    when = dt.datetime(2023, 4, 1, 9, 0, tzinfo=dt.UTC)
    message = outbox.emit(session, "order.completed", {"order_id": 1}, origin="import", occurred_at=when)
    session.commit()
    session.expire_all()
    stored = session.get(OutboxMessage, message.id)
    assert stored.origin == "import" and stored.occurred_at == when
    with pytest.raises(ValueError, match="unknown origin"):
        outbox.emit(session, "order.completed", {}, origin="somewhere")


def test_emit_rows_writes_the_same_messages_and_deliveries_as_emit(session, db, declared):
    declared("a", "customer.imported", handle=lambda s, d: None)
    people = [factories.customer(session, email=f"bulk{n}@example.jp") for n in range(3)]
    session.commit()
    from kizuna.customers.models import Customer

    count = outbox.emit_rows(
        session,
        "customer.imported",
        select(
            outbox.json_object(session, {"customer_id": Customer.id}).label("payload"),
            Customer.id.label("customer_id"),
            Customer.created_at.label("occurred_at"),
        ).where(Customer.id.in_([p.id for p in people])),
        origin="import",
    )
    session.commit()
    assert count == 3
    session.expire_all()
    messages = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "customer.imported")).all()
    assert sorted(m.payload["customer_id"] for m in messages) == sorted(p.id for p in people)
    assert {m.origin for m in messages} == {"import"}
    assert {m.customer_id for m in messages} == {p.id for p in people}
    assert run_once(db, worker="w").done == 3
