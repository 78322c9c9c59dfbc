"""A journey's numbers: per step entered / waiting / completed / dropped, what its messages became (read from the
messages the sender updates), the paths taken, and the A/B/n test with its significance and holdout uplift."""

from __future__ import annotations

import pytest
from scipy import stats as scipy_stats
from sqlalchemy import update

from kizuna.analytics.significance import chi_square, two_proportion
from kizuna.db import utcnow
from kizuna.journeys import engine, service
from kizuna.journeys import stats as journey_stats
from kizuna.messaging.models import Message
from kizuna.outbox.worker import run_once
from tests import factories
from tests.journeys.conftest import MARKETER, definition, enrollments, messages, publish, template


def test_two_proportion_z_test_matches_the_textbook_and_the_chi_square_of_the_same_table():
    z, p = two_proportion(45, 100, 30, 100)
    assert z == pytest.approx(2.1909, abs=1e-4) and p == pytest.approx(0.02846, abs=1e-4)
    chi2 = scipy_stats.chi2_contingency([[45, 55], [30, 70]], correction=False)
    assert z**2 == pytest.approx(chi2.statistic) and chi_square([(45, 100), (30, 100)]) == pytest.approx(p)
    assert two_proportion(0, 0, 1, 10) == (None, None) and chi_square([(0, 10), (0, 10)]) is None


def test_step_counts_message_outcomes_variants_and_uplift(session, db):
    template(session)
    ids = [factories.customer(session, email=f"s{i}@example.jp").id for i in range(120)]
    session.commit()
    steps = [
        {"id": "split", "type": "split", "holdout": 25, "variants": [
            {"name": "A", "weight": 1, "next": "mail_a"}, {"name": "B", "weight": 1, "next": "mail_b"}]},
        {"id": "mail_a", "type": "send", "template": "welcome-mail", "next": "wait"},
        {"id": "mail_b", "type": "send", "template": "welcome-mail", "next": "wait"},
        {"id": "wait", "type": "wait", "duration": "P2D", "next": "end"},
        {"id": "end", "type": "exit"},
    ]  # fmt: skip
    journey_id = publish(session, definition(steps, goal={"event": "order.completed", "within_days": 30}))
    service.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=ids)
    session.commit()
    engine.run_until_idle(db)
    rows = enrollments(session, journey_id)
    groups = {"A": [], "B": [], "holdout": []}
    for e in rows:
        groups["holdout" if e.holdout else e.variant].append(e.customer_id)
    # The sender's part, as it records it: some mails sent and opened, one clicked, one bounced, one skipped.
    sent = messages(session)
    by_customer = {m.customer_id: m for m in sent}
    a = [by_customer[c] for c in groups["A"]]
    now = utcnow()
    session.execute(update(Message).where(Message.id.in_([m.id for m in a[:5]])).values(status="sent", sent_at=now))
    session.execute(update(Message).where(Message.id.in_([m.id for m in a[:3]])).values(opened_at=now))
    session.execute(update(Message).where(Message.id == a[0].id).values(clicked_at=now))
    session.execute(update(Message).where(Message.id == a[4].id).values(bounced_at=now))
    session.execute(update(Message).where(Message.id == a[5].id).values(status="skipped", reason="no_consent"))
    # A template that fails to render is the sender's failure, recorded on its message; the journey goes on.
    session.execute(
        update(Message)
        .where(Message.id == a[6].id)
        .values(status="failed", reason="render_error", error="'coupon' is undefined")
    )
    session.commit()
    # Conversions: 3 in A, 1 in B, 1 in the holdout.
    for customer_id in groups["A"][:3] + groups["B"][:1] + groups["holdout"][:1]:
        factories.order(session, customer_id=customer_id, ordered_at=utcnow(), lines=[], total_amount=100)
    session.commit()
    # The worker: the goal's deliveries, and the sender, which skips the rest (these customers gave no consent).
    while run_once(db, worker="w", limit=500).done:
        pass

    found = journey_stats.journey_stats(session, journey_id, actor=MARKETER)
    by_step = {s.step: s for s in found.steps}
    treated = len(groups["A"]) + len(groups["B"])
    assert [s.step for s in found.steps] == ["split", "mail_a", "mail_b", "wait", "end"]
    assert by_step["split"].entered == 120
    # The holdout waits at the split for the goal's window (one converted and left).
    assert by_step["split"].waiting == len(groups["holdout"]) - 1 and by_step["split"].converted == 1
    assert by_step["mail_a"].entered == len(groups["A"]) and by_step["mail_a"].completed == len(groups["A"])
    assert by_step["wait"].entered == treated and by_step["wait"].converted == 4
    assert by_step["wait"].waiting == treated - 4 and by_step["end"].entered == 0
    assert by_step["mail_a"].messages == {
        "queued": 0, "sent": 5, "delivered": 4, "opened": 3, "clicked": 1, "unsubscribed": 0,
        "failed": 1, "skipped": len(groups["A"]) - 6,
    }  # fmt: skip
    assert by_step["mail_b"].messages["skipped"] == len(groups["B"])
    a_count, b_count = len(groups["A"]), len(groups["B"])
    assert sorted(found.links) == sorted(
        [("split", "mail_a", a_count), ("split", "mail_b", b_count), ("mail_a", "wait", a_count),
         ("mail_b", "wait", b_count)]
    )  # fmt: skip
    assert found.metric == "converted"
    va, vb = found.variants
    assert (va.name, va.customers, va.successes, va.sent, va.opened, va.clicked) == ("A", len(groups["A"]), 3, 5, 3, 1)
    assert (vb.name, vb.customers, vb.successes) == ("B", len(groups["B"]), 1)
    assert (vb.z, vb.p_value) == two_proportion(1, len(groups["B"]), 3, len(groups["A"]))
    up = found.uplift
    assert (up.treated.customers, up.treated.successes) == (treated, 4)
    assert (up.holdout.customers, up.holdout.successes) == (len(groups["holdout"]), 1)
    assert up.absolute == pytest.approx(4 / treated - 1 / len(groups["holdout"]))
    assert up.p_value == two_proportion(4, treated, 1, len(groups["holdout"]))[1]
