"""The demo's service side: a newcomer's desk, NPS and chat pages have something real to show."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from kizuna.chat.models import Chat
from kizuna.customers.models import Customer
from kizuna.db import transaction
from kizuna.demo import load_demo
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.knowledge.models import Article
from kizuna.messaging.models import Message
from kizuna.surveys import report
from kizuna.surveys.models import Survey, SurveyResponse


def test_demo_fills_the_desk_nps_and_chat(db) -> None:
    load_demo(db, customers=80, seed=3)
    with transaction(db) as s:
        statuses = dict(s.execute(select(Inquiry.status, func.count()).group_by(Inquiry.status)).all())
        assert set(statuses) == {"new", "open", "pending", "resolved", "closed"}
        unclaimed = s.scalar(select(func.count()).where(Inquiry.claimed_by.is_(None), Inquiry.status == "new"))
        assert unclaimed >= 3  # something for the newcomer to claim
        assert (
            s.scalar(
                select(func.count()).where(
                    Inquiry.claimed_by.is_(None), Inquiry.first_response_due_at < dt.datetime.now(dt.UTC)
                )
            )
            >= 2
        )
        # Answered tickets have a first response after they opened, so the response-time report has figures.
        answered = s.execute(select(Inquiry.created_at, Inquiry.first_responded_at).where(
            Inquiry.first_responded_at.is_not(None))).all()  # fmt: skip
        assert answered and all(first > created for created, first in answered)
        assert s.scalar(select(func.count()).where(InquiryMessage.direction == "out")) >= 6

        waiting = s.scalars(select(Chat).where(Chat.status == "waiting_agent")).all()
        assert waiting and all(c.inquiry_id is not None for c in waiting)  # the hand-over opened its ticket
        assert s.scalar(select(func.count()).select_from(Article)) >= 15

        surveys = s.scalars(select(Survey)).all()
        assert len(surveys) == 2
        scores = set(s.scalars(select(SurveyResponse.score)))
        assert min(scores) <= 6 and max(scores) >= 9  # detractors and promoters
        months = report.report(s, surveys[0].id, by="month")
        assert len(months.rows) >= 3  # a trend, not one point

        # The demo's people live on reserved example domains, and nothing has been sent to anyone.
        domains = {e.rsplit("@", 1)[1] for e in s.scalars(select(Customer.email).where(Customer.email.is_not(None)))}
        assert domains <= {"example.com", "example.net", "example.org"}
        assert s.scalar(select(func.count()).where(Message.status == "sent")) == 0
