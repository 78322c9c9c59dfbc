"""Surveys under test: a survey, customers, and the links of a customer made by the service."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.surveys import service
from kizuna.surveys.schemas import SurveyCreate

MARKETER = Actor(label="marketer@example.com", role="marketer", origin="api")


def survey(session: Session, name: str = "購入後 NPS", touchpoint: str = "purchase", **fields: Any) -> Any:
    data = SurveyCreate(
        name=name,
        question_ja="当店を友人に薦める可能性はどのくらいありますか?",
        question_en="How likely are you to recommend us to a friend?",
        touchpoint=touchpoint,
        **fields,
    )
    return service.create_survey(session, actor=MARKETER, data=data)


def link_path(
    session: Session, survey_id: int, customer_id: int, *, send_key: str = "k1", score: int = 7,
    now: dt.datetime | None = None,
) -> str:  # fmt: skip
    """The path (``/nps/TOKEN?score=N``) of a customer's link."""
    found = service.make_links(
        session, actor=MARKETER, survey_id=survey_id, customer_id=customer_id, send_key=send_key,
        base_url="http://testserver", now=now,
    )  # fmt: skip
    url = found.links[score].url
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def token_of(path: str) -> str:
    return path.split("/nps/", 1)[1].split("?", 1)[0]


# The UI's signed-in clients and browser sign-in, and the real SMTP sink with the sender's settings.
from tests.messaging.conftest import configure, mail_ready, smtp_sink  # noqa: E402, F401
from tests.web.conftest import make_user, sign_in, ui_client  # noqa: E402, F401
