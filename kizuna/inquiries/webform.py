"""The public inquiry form (for a link or an iframe on the shop's site): its signed token and what a submission
becomes.

No cookie and no CSRF token: a visitor has no session. Instead the page carries a token signed by this Kizuna
with the time it was served; a submission needs a valid token that is neither too fresh (a bot posts at once) nor
too old, and an empty honeypot field (hidden from people, filled by bots). A bot's submission is answered like a
person's, so it learns nothing, and nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from kizuna import keys
from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.errors import ValidationError
from kizuna.inquiries import service
from kizuna.inquiries.models import Inquiry
from kizuna.inquiries.schemas import InquiryCreate

PURPOSE = "inquiry-form"
HONEYPOT = "website"
FIELDS = ("name", "email", "phone", "category", "subject", "body")


def issue_token(now: float | None = None) -> str:
    return keys.sign(PURPOSE, str(int(now if now is not None else time.time())))


def check_token(token: str, now: float | None = None) -> None:
    """A clear error for a forged, too fresh or expired form; nothing for a good one."""
    try:
        served = int(keys.unsign(PURPOSE, token or ""))
    except (keys.BadToken, ValueError) as exc:
        raise ValidationError(
            "the form is not valid; reload the page and send it again", field="form", key="error.inquiry_form_token"
        ) from exc
    settings = get_settings()
    age = (now if now is not None else time.time()) - served
    if age < settings.inquiry_form_min_seconds:
        raise ValidationError(
            "the form was sent too quickly; wait a moment and send it again",
            field="form",
            key="error.inquiry_form_fast",
        )
    if age > settings.inquiry_form_max_hours * 3600:
        raise ValidationError(
            "the form has expired; reload the page and send it again", field="form", key="error.inquiry_form_token"
        )


@dataclass(frozen=True)
class Submitted:
    inquiry: Inquiry | None
    spam: bool


def submit(session: Session, *, values: dict[str, str], token: str, honeypot: str) -> Submitted:
    """A ticket (channel web_form) from the form's values; a filled honeypot writes nothing."""
    check_token(token)
    if honeypot.strip():
        return Submitted(None, True)
    if not values.get("email", "").strip():
        raise ValidationError(
            "an e-mail address is needed to answer you", field="email", key="error.inquiry_form_email"
        )
    data = InquiryCreate(
        subject=values.get("subject", "").strip(),
        body=values.get("body", "").strip(),
        channel="web_form",
        email=values["email"].strip(),
        phone=values.get("phone", "").strip() or None,
        name=values.get("name", "").strip() or None,
        category=values.get("category", "").strip() or None,
    )
    actor = Actor.system("web_form", origin="api")
    return Submitted(service.open_inquiry(session, actor=actor, data=data).inquiry, False)
