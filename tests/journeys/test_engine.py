"""The engine: customers move through the steps that do not wait in one pass, stop at waits, keep their version,
and a customer whose step keeps failing ends failed with the reason while the others go on."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from kizuna.auth.models import AuditEntry
from kizuna.db import utcnow
from kizuna.journeys import engine, service
from kizuna.journeys.handlers import choose
from kizuna.journeys.models import JourneyEnrollment, JourneyStep
from kizuna.journeys.steps import End, Next, StepModel, register_step
from kizuna.outbox.models import OutboxMessage
from tests import factories
from tests.journeys.conftest import MARKETER, definition, enrollments, messages, publish, template

WELCOME = [
    {"id": "w1", "type": "wait", "duration": "P0D", "next": "b1"},
    {"id": "b1", "type": "branch", "condition": {"attribute": "prefecture", "op": "eq", "value": "東京都"}, "yes": "m1",
     "no": "t1"},
    {"id": "m1", "type": "send", "template": "welcome-mail", "next": "x1"},
    {"id": "t1", "type": "tag", "add": ["地方"], "next": "x1"},
    {"id": "x1", "type": "exit"},
]  # fmt: skip


def _customers(session, n: int, **fields):  # noqa: ANN001, ANN202
    made = [factories.customer(session, email=f"c{i}@example.jp", **fields) for i in range(n)]
    session.commit()
    return [c.id for c in made]


def _due_now(session, journey_id: int) -> None:  # noqa: ANN001
    """Let every wait of the journey end now (instead of sleeping through it)."""
    session.execute(
        update(JourneyEnrollment)
        .where(JourneyEnrollment.journey_id == journey_id, JourneyEnrollment.status == "waiting")
        .values(next_at=utcnow() - dt.timedelta(seconds=1))
    )
    session.commit()


def test_customers_pass_wait_zero_branch_send_and_tag_in_one_pass(session, db):
    template(session)
    tokyo = _customers(session, 2, prefecture="東京都")
    osaka = [factories.customer(session, email="o@example.jp", prefecture="大阪府").id]
    session.commit()
    journey_id = publish(session, definition(WELCOME))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=tokyo + osaka)
    session.commit()
    assert engine.run_pass(db, "w1") == 3
    rows = enrollments(session, journey_id)
    assert {(e.customer_id, e.status, e.step) for e in rows} == {(c, "completed", "x1") for c in tokyo + osaka}
    assert all(e.finished_at is not None and e.next_at is None and e.locked_by is None for e in rows)
    sent = messages(session)
    by_customer = {e.customer_id: e.id for e in rows}
    assert sorted((m.customer_id, m.key) for m in sent) == sorted(
        (c, f"journey:{journey_id}:enrollment:{by_customer[c]}:step:m1") for c in tokyo
    )
    m = sent[0]
    assert (m.source, m.source_id, m.source_step, m.channel, m.kind, m.status) == (
        "journey", journey_id, "m1", "email", "marketing", "queued"
    )  # fmt: skip
    assert m.enrollment_id == by_customer[m.customer_id] and m.template_id is not None
    from kizuna.customers.service import get_customer

    session.expire_all()
    assert [t.name for t in get_customer(session, osaka[0]).tags] == ["地方"]
    assert [t.name for t in get_customer(session, tokyo[0]).tags] == []
    # The tag is a customer change like any other: audited, and announced to the outbox (segments read it).
    audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.update")).all()
    assert [(a.customer_id, a.details) for a in audited] == [(osaka[0], {"tags": [[], ["地方"]]})]
    updated = session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "customer.updated")).all()
    assert [(u.customer_id, u.payload["fields"], u.origin) for u in updated] == [(osaka[0], ["tags"], "worker")]
    # The path of each customer is in the step log.
    log = Counter(
        (s.from_step, s.step) for s in session.scalars(select(JourneyStep).where(JourneyStep.journey_id == journey_id))
    )
    assert log == {(None, "w1"): 3, ("w1", "b1"): 3, ("b1", "m1"): 2, ("b1", "t1"): 1, ("m1", "x1"): 2, ("t1", "x1"): 1}
    assert engine.run_pass(db, "w1") == 0


def test_a_wait_stops_the_customer_until_its_time_and_then_they_move_on(session, db):
    ids = _customers(session, 2)
    steps = [
        {"id": "w", "type": "wait", "duration": {"days": 2, "hours": 3}, "next": "a"},
        {"id": "a", "type": "attribute", "set": {"stage": "nurtured", "lifecycle_stage": "prospect"}, "next": "x"},
        {"id": "x", "type": "exit"},
    ]
    journey_id = publish(session, definition(steps))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    before = utcnow()
    engine.run_until_idle(db)
    rows = enrollments(session, journey_id)
    assert {(e.status, e.step) for e in rows} == {("waiting", "w")}
    assert all(
        dt.timedelta(days=2, hours=3) <= e.next_at - before < dt.timedelta(days=2, hours=3, minutes=1) for e in rows
    )
    assert engine.run_pass(db, "w1") == 0  # nothing due yet
    _due_now(session, journey_id)
    assert engine.run_pass(db, "w1") == 2
    rows = enrollments(session, journey_id)
    assert {(e.status, e.step) for e in rows} == {("completed", "x")}
    from kizuna.customers.service import get_customer

    session.expire_all()
    c = get_customer(session, ids[0])
    assert c.attributes == {"stage": "nurtured"} and c.lifecycle_stage == "prospect"


def test_wait_until_a_time_of_day_uses_each_customers_time_zone(session, db):
    tokyo = factories.customer(session, email="t@example.jp", timezone="Asia/Tokyo").id
    la = factories.customer(session, email="la@example.jp", timezone="America/Los_Angeles").id
    session.commit()
    steps = [{"id": "w", "type": "wait", "until": "09:00", "next": "x"}, {"id": "x", "type": "exit"}]
    journey_id = publish(session, definition(steps))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=[tokyo, la])
    session.commit()
    now = utcnow()
    engine.run_until_idle(db)
    for e in enrollments(session, journey_id):
        zone = ZoneInfo("Asia/Tokyo" if e.customer_id == tokyo else "America/Los_Angeles")
        local = e.next_at.astimezone(zone)
        assert (local.hour, local.minute) == (9, 0)
        assert dt.timedelta(0) < e.next_at - now <= dt.timedelta(days=1)


def test_a_split_puts_each_customer_in_the_same_variant_on_every_run_by_weight_with_a_holdout(session, db):
    from kizuna.journeys.steps import SplitStep

    split = SplitStep.model_validate(
        {"id": "s", "type": "split", "holdout": 10, "variants": [
            {"name": "A", "weight": 70, "next": "x"}, {"name": "B", "weight": 30, "next": "x"}]}
    )  # fmt: skip
    draws = Counter(choose(split, i)[0] for i in range(1, 20_001))
    assert draws == Counter(choose(split, i)[0] for i in range(1, 20_001))  # the same again
    assert abs(draws[None] / 20_000 - 0.10) < 0.01
    assert abs(draws["A"] / 20_000 - 0.63) < 0.015 and abs(draws["B"] / 20_000 - 0.27) < 0.015

    template(session)
    ids = _customers(session, 40)
    steps = [
        {"id": "s", "type": "split", "holdout": 20, "variants": [
            {"name": "A", "weight": 1, "next": "ma"}, {"name": "B", "weight": 1, "next": "mb"}]},
        {"id": "ma", "type": "send", "template": "welcome-mail", "next": "x"},
        {"id": "mb", "type": "send", "template": "welcome-mail", "next": "x"},
        {"id": "x", "type": "exit"},
    ]  # fmt: skip
    journey_id = publish(session, definition(steps, goal={"event": "order.completed", "within_days": 14}))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    engine.run_until_idle(db)
    rows = enrollments(session, journey_id)
    held = [e for e in rows if e.holdout]
    assert held and all(e.status == "waiting" and e.step == "s" and e.variant is None for e in held)
    # Held out until the goal's window has passed, so their conversions count as the others' do.
    assert all(dt.timedelta(days=13) < e.next_at - e.entered_at <= dt.timedelta(days=14) for e in held)
    sent = {m.enrollment_id: m for m in messages(session)}
    for e in rows:
        if not e.holdout:
            expected = choose(steps_model(steps[0]), e.id)[0]
            assert e.variant == expected and sent[e.id].variant == expected
            assert sent[e.id].source_step == ("ma" if expected == "A" else "mb")
    assert not any(e.id in sent for e in held)
    _due_now(session, journey_id)
    engine.run_until_idle(db)
    assert {(e.status, e.finished_at is not None) for e in enrollments(session, journey_id) if e.holdout} == {
        ("exited", True)
    }


def steps_model(raw):  # noqa: ANN001, ANN201
    from kizuna.journeys.steps import SplitStep

    return SplitStep.model_validate(raw)


class FlakyStep(StepModel):
    type: Literal["flaky"]
    next: str | None = None


FAILING: set[int] = set()


def _flaky(ctx, step, runs):  # noqa: ANN001, ANN202
    bad = [r.customer_id for r in runs if r.customer_id in FAILING]
    if bad:
        raise RuntimeError(f"the CRM behind this step refused customer {bad[0]}")
    return {r.id: Next(step.next) if step.next else End("completed") for r in runs}


@pytest.fixture
def flaky_step():
    register_step("flaky", _flaky, model=FlakyStep)
    yield FAILING
    FAILING.clear()


def test_a_customer_whose_step_keeps_failing_ends_failed_with_the_reason_and_the_others_go_on(session, db, flaky_step):
    ids = _customers(session, 5)
    flaky_step.add(ids[2])
    steps = [
        {"id": "f", "type": "flaky", "next": "t"},
        {"id": "t", "type": "tag", "add": ["passed"], "next": "x"},
        {"id": "x", "type": "exit"},
    ]
    journey_id = publish(session, definition(steps))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    engine.run_pass(db, "w1")
    rows = {e.customer_id: e for e in enrollments(session, journey_id)}
    assert {c for c, e in rows.items() if e.status == "completed"} == set(ids) - {ids[2]}
    bad = rows[ids[2]]
    assert (bad.status, bad.step, bad.attempts) == ("active", "f", 1)
    assert "refused customer" in bad.last_error and bad.next_at > utcnow()
    # Nothing of the failed runs was kept: the step log holds the others' passage and no half of hers.
    assert session.scalar(select(func.count()).where(JourneyStep.enrollment_id == bad.id)) == 0
    for _ in range(engine.MAX_ATTEMPTS - 1):
        session.execute(update(JourneyEnrollment).where(JourneyEnrollment.id == bad.id).values(next_at=utcnow()))
        session.commit()
        engine.run_pass(db, "w1")
    session.expire_all()
    bad = session.get(JourneyEnrollment, bad.id)
    assert (bad.status, bad.attempts, bad.next_at) == ("failed", engine.MAX_ATTEMPTS, None)
    assert bad.finished_at is not None and "refused customer" in bad.last_error


def test_a_send_step_whose_template_is_gone_fails_its_customers_with_the_reason(session, db):
    found = template(session)
    ids = _customers(session, 2)
    steps = [{"id": "m", "type": "send", "template": "welcome-mail", "next": "x"}, {"id": "x", "type": "exit"}]
    journey_id = publish(session, definition(steps))
    session.delete(found)
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    engine.run_until_idle(db)
    rows = enrollments(session, journey_id)
    assert {(e.status, e.step) for e in rows} == {("failed", "m")}
    assert rows[0].last_error == "step 'm': there is no template named 'welcome-mail'"


def test_customers_inside_keep_their_version_when_the_journey_is_edited(session, db):
    ids = _customers(session, 2)
    first = [{"id": "w", "type": "wait", "duration": "P1D", "next": "t"}, {"id": "t", "type": "tag", "add": ["v1"]}]
    journey_id = publish(session, definition(first))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids[:1])
    session.commit()
    engine.run_until_idle(db)
    second = [{"id": "w", "type": "wait", "duration": "P1D", "next": "t"}, {"id": "t", "type": "tag", "add": ["v2"]}]
    publish(session, definition(second))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids[1:])
    session.commit()
    engine.run_until_idle(db)
    _due_now(session, journey_id)
    engine.run_until_idle(db)
    from kizuna.customers.service import get_customer

    session.expire_all()
    assert [t.name for t in get_customer(session, ids[0]).tags] == ["v1"]
    assert [t.name for t in get_customer(session, ids[1]).tags] == ["v2"]
    versions = {e.customer_id: e.version_id for e in enrollments(session, journey_id)}
    assert versions[ids[0]] != versions[ids[1]]


def test_a_paused_journey_holds_its_customers_and_resuming_moves_them_on(session, db):
    ids = _customers(session, 3)
    journey_id = publish(session, definition([{"id": "t", "type": "tag", "add": ["x"]}]))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    service.pause(session, journey_id, actor=MARKETER)
    session.commit()
    assert engine.run_pass(db, "w1") == 0
    assert {e.status for e in enrollments(session, journey_id)} == {"active"}
    service.resume(session, journey_id, actor=MARKETER)
    session.commit()
    assert engine.run_pass(db, "w1") == 3
    assert {e.status for e in enrollments(session, journey_id)} == {"completed"}


def test_an_enrollment_leased_to_another_worker_is_left_alone(session, db):
    ids = _customers(session, 2)
    journey_id = publish(session, definition([{"id": "t", "type": "tag", "add": ["x"]}]))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    claimed = engine.claim(db, "w1")
    assert len(claimed) == 2 and engine.claim(db, "w2") == []
    assert engine.process(db, "w2", claimed) == 0
    assert {e.status for e in enrollments(session, journey_id)} == {"active"}
    assert engine.process(db, "w1", claimed) == 2
    assert {e.status for e in enrollments(session, journey_id)} == {"completed"}


def test_archiving_lets_the_customers_inside_exit(session, db):
    ids = _customers(session, 2)
    journey_id = publish(session, definition([{"id": "w", "type": "wait", "duration": "P3D"}]))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    engine.run_until_idle(db)
    service.archive(session, journey_id, actor=MARKETER)
    session.commit()
    rows = enrollments(session, journey_id)
    assert {(e.status, e.next_at, e.last_error) for e in rows} == {("exited", None, "journey archived")}
