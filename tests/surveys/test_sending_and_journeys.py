"""NPS links in real mail (rendered by the sender, delivered to a real SMTP server, the same on a resend), and a
detractor's answer enrolling the customer in a published journey whose trigger filters ``score <= 6``."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from kizuna.db import transaction
from kizuna.errors import ValidationError
from kizuna.messaging import service as messaging
from kizuna.messaging.models import Message, Template
from kizuna.messaging.schemas import TemplateCreate
from kizuna.outbox.worker import run_once
from kizuna.surveys import service
from kizuna.surveys.models import SurveyResponse
from tests import factories
from tests.journeys.conftest import definition, enrollments, publish
from tests.messaging.conftest import consented_customer, queue_mail, send_all
from tests.surveys.conftest import MARKETER, link_path, survey, token_of

HTML = (
    "<p>{{ customer.family_name }}様、ご購入ありがとうございました。</p>"
    '<p>{% for l in nps_links(SURVEY) %}<a href="{{ l.url }}">{{ l.score }}</a> {% endfor %}</p>'
)
LINK = re.compile(r"https://crm\.example\.com/nps/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)\?score=(\d+)")


def drain(db) -> None:  # noqa: ANN001
    while True:
        tally = run_once(db, worker="test-worker", limit=500)
        if not (tally.done or tally.failed or tally.pumped):
            return


def test_a_sent_mail_carries_the_eleven_links_and_a_resend_the_same_ones(db, mail_ready, app):
    with transaction(db) as session:
        sid = survey(session).id
        customer = consented_customer(session, "hanako@example.jp", family_name="山田")
        html = HTML.replace("SURVEY", str(sid))
        data = TemplateCreate(name="nps", channel="email", subject="アンケートのお願い", html=html)
        template = messaging.create_template(session, actor=MARKETER, data=data)
        message = queue_mail(
            session, customer.id, "campaign:5:c1", template_id=template.id, source="campaign", source_id=5
        )
        message_id = message.id
    assert send_all(db) == 1
    [first] = mail_ready.to("hanako@example.jp")
    found = LINK.findall(first.part("plain"))
    assert [int(score) for _, score in found] == list(range(11)) and len({token for token, _ in found}) == 1
    token = found[0][0]
    # The HTML part has them too (behind click tracking).
    assert first.part("html").count("/t/c/") >= 11
    # Resent (the same message row sent again): the very same links.
    with transaction(db) as session:
        session.execute(update(Message).where(Message.id == message_id).values(status="queued", sent_at=None))
    assert send_all(db) == 1
    second = mail_ready.to("hanako@example.jp")[1]
    assert LINK.findall(second.part("plain")) == found
    # The link of score 2 opens the page with 2 chosen and records nothing; the form's POST records.
    with TestClient(app) as visitor:
        page = visitor.get(f"/nps/{token}?score=2")
        assert page.status_code == 200 and 'value="2" checked' in page.text
        with transaction(db) as session:
            assert session.scalar(select(SurveyResponse.id)) is None
            delivery_key = session.get(Message, message_id).delivery_key
        assert visitor.post(f"/nps/{token}", data={"score": "2", "comment": "箱が潰れていた"}).status_code == 200
    with transaction(db) as session:
        [row] = session.scalars(select(SurveyResponse))
        assert (row.score, row.source, row.source_id, row.send_key) == (2, "campaign", 5, delivery_key)


def test_a_template_naming_a_missing_survey_is_refused_when_saved(session):
    with pytest.raises(ValidationError, match="no active survey"):
        messaging.create_template(
            session, actor=MARKETER,
            data=TemplateCreate(name="bad", channel="email", subject="s", html=HTML.replace("SURVEY", "404")),
        )  # fmt: skip
    assert session.scalar(select(Template.id)) is None


def test_a_detractor_answer_enrols_the_customer_in_a_journey_triggered_by_score_up_to_6(db):
    with transaction(db) as session:
        sid = survey(session).id
        unhappy = factories.customer(session, email="unhappy@example.jp").id
        happy = factories.customer(session, email="happy@example.jp").id
        paths = {c: link_path(session, sid, c) for c in (unhappy, happy)}
    steps = [{"id": "t", "type": "tag", "add": ["nps-detractor"], "next": "x"}, {"id": "x", "type": "exit"}]
    trigger = {"type": "event", "event": "nps.answered", "properties": {"score": {"lte": 6}}}
    with transaction(db) as session:
        journey_id = publish(session, definition(steps, name="detractor follow-up", trigger=trigger))
    with transaction(db) as session:
        service.answer(session, token_of(paths[unhappy]), score=3, comment="遅い")
        service.answer(session, token_of(paths[happy]), score=10)
    drain(db)
    with transaction(db) as session:
        rows = enrollments(session, journey_id)
        assert [(e.customer_id, e.status) for e in rows] == [(unhappy, "completed")]
        from kizuna.customers.service import get_customer

        assert [t.name for t in get_customer(session, unhappy).tags] == ["nps-detractor"]
        assert get_customer(session, happy).tags == []


def test_a_detractor_answer_opens_a_ticket_for_the_account_owner_through_a_journey(db):
    """The loop the issue names: a score of 0–6 triggers a journey whose step opens an inquiry claimed for the
    customer's owner; a promoter opens nothing."""
    from kizuna.inquiries.models import Inquiry, InquiryMessage

    with transaction(db) as session:
        sid = survey(session).id
        owner = factories.user(session, email="owner-nps@example.com", role="sales")
        unhappy = factories.customer(session, email="unhappy2@example.jp", owner_id=owner.id).id
        happy = factories.customer(session, email="happy2@example.jp", owner_id=owner.id).id
        paths = {c: link_path(session, sid, c) for c in (unhappy, happy)}
    steps = [
        {"id": "ticket", "type": "open_inquiry", "subject": "NPS {{ event.properties.score }} 批判者へのフォロー",
         "body": "コメント: {{ event.properties.comment }}", "priority": "high", "next": "done"},
        {"id": "done", "type": "exit"},
    ]  # fmt: skip
    trigger = {"type": "event", "event": "nps.answered", "properties": {"score": {"lte": 6}}}
    with transaction(db) as session:
        publish(session, definition(steps, name="detractor ticket", trigger=trigger))
    with transaction(db) as session:
        service.answer(session, token_of(paths[unhappy]), score=2, comment="サポートの返事がない")
        service.answer(session, token_of(paths[happy]), score=9)
    drain(db)
    with transaction(db) as session:
        tickets = session.scalars(select(Inquiry)).all()
        assert [(t.customer_id, t.claimed_by, t.priority) for t in tickets] == [(unhappy, owner.id, "high")]
        # The answer's score and comment came with the event into the ticket.
        assert tickets[0].subject == "NPS 2 批判者へのフォロー"
        first = session.scalars(
            select(InquiryMessage).where(InquiryMessage.inquiry_id == tickets[0].id, InquiryMessage.direction == "in")
        ).one()
        assert first.body == "コメント: サポートの返事がない"
