"""Several workers at once: two engines racing over the same due enrollments run each step once per customer
(leases; SKIP LOCKED on PostgreSQL), and the database keeps one open enrollment per customer and journey even
when two entries slip past the re-entry check together."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from kizuna.customers.models import customer_tags
from kizuna.db import new_session, utcnow
from kizuna.journeys import engine, service
from kizuna.journeys.enroll import _insert_ignoring_duplicates
from kizuna.journeys.models import JourneyEnrollment, JourneyStep
from kizuna.messaging.models import Message
from tests import factories
from tests.journeys.conftest import MARKETER, definition, enrollments, publish, template

STEPS = [
    {"id": "b", "type": "branch", "condition": {"attribute": "prefecture", "op": "eq", "value": "東京都"}, "yes": "t",
     "no": "m"},
    {"id": "t", "type": "tag", "add": ["tokyo"], "next": "m"},
    {"id": "m", "type": "send", "template": "welcome-mail", "next": "x"},
    {"id": "x", "type": "exit"},
]  # fmt: skip


def test_two_workers_racing_run_each_step_once_per_customer(session, db):
    template(session)
    ids = [
        factories.customer(session, email=f"r{i}@example.jp", prefecture="東京都" if i % 2 else "大阪府").id
        for i in range(600)
    ]
    session.commit()
    journey_id = publish(session, definition(STEPS))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    handled: Counter[str] = Counter()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            handled[name] = engine.run_until_idle(db, name, limit=50)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(handled.values()) == 600
    rows = enrollments(session, journey_id)
    assert {e.status for e in rows} == {"completed"}
    per_step = Counter(
        (enrollment, step) for enrollment, step in session.execute(select(JourneyStep.enrollment_id, JourneyStep.step))
    )
    assert set(per_step.values()) == {1}
    assert len(per_step) == 300 * 4 + 300 * 3
    assert session.scalar(select(func.count()).select_from(Message)) == 600
    assert session.scalar(select(func.count()).select_from(customer_tags)) == 300


def test_the_database_keeps_one_open_enrollment_per_customer_and_journey(session, db):
    customer = factories.customer(session, email="o@example.jp").id
    session.commit()
    journey_id = publish(session, definition([{"id": "w", "type": "wait", "duration": "P1D"}]))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=[customer])
    session.commit()
    (first,) = enrollments(session, journey_id)
    # A second entry that got past the re-entry check (another worker's, at the same moment) adds nothing.
    other = new_session(db)
    try:
        row = {
            "journey_id": journey_id,
            "version_id": first.version_id,
            "customer_id": customer,
            "entry_key": "m:999",
            "status": "active",
            "step": "w",
            "next_at": utcnow(),
            "attempts": 0,
            "holdout": False,
            "entered_at": utcnow(),
        }
        written = other.connection().execute(
            _insert_ignoring_duplicates(other).returning(JourneyEnrollment.__table__.c.id), [row]
        )
        assert written.all() == []
        other.commit()
    finally:
        other.close()
    assert len(enrollments(session, journey_id)) == 1
