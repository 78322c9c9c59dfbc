"""The desk seen from other domains: a journey step that opens a ticket for the account owner, the public webhook
events ``inquiry.created`` / ``inquiry.resolved`` delivered to a real local receiver, and the customer timeline."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from kizuna.inquiries import service
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.inquiries.schemas import InquiryCreate, InquiryUpdate
from kizuna.journeys import engine
from kizuna.journeys import service as journeys
from tests import factories
from tests.journeys.conftest import MARKETER, definition, publish
from tests.webhooks.conftest import allow_loopback, drain, receiver, settings_env, subscribe  # noqa: F401

FOLLOW_UP = [
    {
        "id": "ticket",
        "type": "open_inquiry",
        "subject": "NPS 批判者へのフォロー",
        "body": "スコア 3: 配送が遅い",
        "priority": "high",
        "next": "done",
    },
    {"id": "done", "type": "exit"},
]


def test_a_journey_step_opens_a_ticket_for_the_account_owner_once(session, db):
    owner = factories.user(session, email="owner@example.com", role="sales")
    customer = factories.customer(session, email="angry@example.jp", owner_id=owner.id)
    session.commit()
    journey_id = publish(session, definition(FOLLOW_UP))
    journeys.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=[customer.id])
    session.commit()
    engine.run_pass(db, "w1")
    engine.run_pass(db, "w1")  # nothing left to do: no second ticket
    session.expire_all()
    [ticket] = session.scalars(select(Inquiry)).all()
    assert ticket.customer_id == customer.id and ticket.claimed_by == owner.id and ticket.priority == "high"
    assert ticket.subject == "NPS 批判者へのフォロー" and ticket.status == "open"


def test_a_journey_with_a_bad_open_inquiry_step_is_refused_naming_the_field(session):
    from kizuna.errors import KizunaError

    bad = definition([{"id": "ticket", "type": "open_inquiry", "subject": "", "priority": "asap"}])
    try:
        publish(session, bad)
    except KizunaError as exc:
        assert "subject" in str(exc.message) or "priority" in str(exc.message)
    else:  # pragma: no cover
        raise AssertionError("the bad step was accepted")


def test_created_and_resolved_are_sent_to_webhook_subscribers(db, session, admin, receiver, allow_loopback):  # noqa: F811
    subscribe(session, admin, receiver.url(), ["inquiry.created", "inquiry.resolved"])
    inquiry = service.create_inquiry(
        session, actor=admin, data=InquiryCreate(subject="請求書の再発行", email="bill@example.jp")
    )
    session.commit()
    service.update_inquiry(session, actor=admin, inquiry_id=inquiry.id, data=InquiryUpdate(status="resolved"))
    session.commit()
    drain(db)
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["inquiry.created", "inquiry.resolved"]
    assert bodies[0]["data"]["inquiry"]["subject"] == "請求書の再発行"
    assert bodies[0]["data"]["customer"]["email"] == "bill@example.jp"
    assert bodies[1]["data"]["inquiry"]["status"] == "resolved" and bodies[1]["data"]["inquiry"]["reference"]
    # The SLA's pause is part of the ticket a receiver sees (none here: it never waited for the customer).
    assert (
        bodies[1]["data"]["inquiry"]["sla_paused_at"] is None and bodies[1]["data"]["inquiry"]["pending_seconds"] == 0
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{{ event.properties.comment", "not a valid template"),
        ("{{ secret_key }}", "unknown variable secret_key"),
        ("{{ event.properties.items() }}", "items(...) is a call"),
        ("{{ event.properties.comment | no_such_filter }}", "no_such_filter"),
    ],
)
def test_a_broken_ticket_template_is_refused_when_the_journey_is_published(session, body, says):
    from kizuna.errors import KizunaError

    bad = definition([{"id": "ticket", "type": "open_inquiry", "subject": "NPS", "body": body, "next": "done"},
                      {"id": "done", "type": "exit"}])  # fmt: skip
    with pytest.raises(KizunaError) as caught:
        publish(session, bad)
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(path == "steps.ticket.body" and says in message for path, message in problems), problems


def test_a_ticket_template_without_a_triggering_event_renders_its_fallbacks(session, db):
    customer = factories.customer(session, email="quiet@example.jp")
    session.commit()
    steps = [
        {"id": "ticket", "type": "open_inquiry", "subject": "{{ customer.email }} のフォロー",
         "body": "コメント: {{ event.properties.comment | default('なし') }} / {{ event.type }}", "next": "done"},
        {"id": "done", "type": "exit"},
    ]  # fmt: skip
    journey_id = publish(session, definition(steps))
    journeys.enroll_customers(session, journey_id, actor=MARKETER, customer_ids=[customer.id])
    session.commit()
    engine.run_pass(db, "w1")
    session.expire_all()
    [ticket] = session.scalars(select(Inquiry)).all()
    assert ticket.subject == "quiet@example.jp のフォロー"
    body = session.scalars(select(InquiryMessage.body).where(InquiryMessage.direction == "in")).one()
    assert body == "コメント: なし / "
