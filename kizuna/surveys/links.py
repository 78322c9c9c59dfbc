"""Signed answer links: ``https://PUBLIC/nps/TOKEN?score=N``, one per score 0-10.

The token names the survey, the customer, the send key and the expiry, and is signed as the unsubscribe links are
(``keys.sign("survey", ...)``: HMAC under a key derived from ``KIZUNA_SECRET_KEY`` for this purpose alone), so it
cannot be made for another customer or survey, nor kept alive past its expiry. The score is not in the token: the
eleven links of one message share it and differ only in ``?score=``, and the page lets the customer change it.

The send key of a mailed link is the message's ``delivery_key`` (fixed before its first attempt) and its expiry
counts from the message's creation, so a resent message carries the very same links.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kizuna import keys
from kizuna.errors import KizunaError, ValidationError

PURPOSE = "survey"
SCORES = tuple(range(11))
MAX_SEND_KEY = 200


class LinkExpired(keys.BadToken):
    """A genuine link used after its expiry."""

    status_code = 410
    code = "link_expired"


@dataclass(frozen=True)
class Claim:
    """What a verified token stands for."""

    survey_id: int
    customer_id: int
    send_key: str
    expires_at: dt.datetime


def token(
    survey_id: int,
    customer_id: int,
    send_key: str,
    expires_at: dt.datetime,
    sign: Callable[[str], str] | None = None,
) -> str:
    """The signed token; ``sign``: a ``keys.signer("survey")`` made once for many links."""
    if not send_key or len(send_key) > MAX_SEND_KEY:
        raise ValidationError(f"a send key has 1 to {MAX_SEND_KEY} characters", field="send_key")
    expires = int(expires_at.timestamp())
    # The send key goes last: it is the only part that may itself hold a colon.
    return (sign or keys.signer(PURPOSE))(f"{survey_id}:{customer_id}:{expires}:{send_key}")


def read(token_text: str, *, now: dt.datetime | None = None) -> Claim:
    """The claim inside a token; ``keys.BadToken`` for a forged or altered one, ``LinkExpired`` past its expiry."""
    value = keys.unsign(PURPOSE, token_text)
    parts = value.split(":", 3)
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or not parts[3]:
        raise keys.BadToken("not a survey link")
    expires_at = dt.datetime.fromtimestamp(int(parts[2]), dt.UTC)
    if (now or dt.datetime.now(dt.UTC)) > expires_at:
        raise LinkExpired(f"this survey link expired on {expires_at:%Y-%m-%d}")
    return Claim(int(parts[0]), int(parts[1]), parts[3], expires_at)


def score_urls(base_url: str, token_text: str) -> list[dict[str, Any]]:
    """``[{"score": 0, "url": ...}, ..., {"score": 10, "url": ...}]``."""
    base = f"{base_url.rstrip('/')}/nps/{token_text}"
    return [{"score": s, "url": f"{base}?score={s}"} for s in SCORES]


def expiry(sent_at: dt.datetime, link_days: int) -> dt.datetime:
    # Whole seconds, so that the same message always signs the same token.
    return (sent_at + dt.timedelta(days=link_days)).replace(microsecond=0)


class NoPublicURL(KizunaError):
    status_code = 422
    code = "no_public_url"


def template_function(
    surveys: Mapping[int, int],
    *,
    base_url: str,
    customer_id: int | None,
    send_key: str,
    sent_at: dt.datetime,
    sign: Callable[[str], str] | None = None,
) -> Callable[[int], list[dict[str, Any]]]:
    """``nps_links(survey_id)`` for one message's template: its 11 links. ``surveys`` maps each active survey's
    id to its ``link_days`` (read once per batch). A missing survey, customer or public URL fails the render with
    a message that says which."""
    signer = sign or keys.signer(PURPOSE)

    def nps_links(survey_id: int) -> list[dict[str, Any]]:
        if not isinstance(survey_id, int) or survey_id not in surveys:
            raise ValidationError(f"nps_links({survey_id!r}): no active survey with this id")
        if customer_id is None:
            raise ValidationError("nps_links: the message has no customer to ask")
        if not base_url:
            raise NoPublicURL("nps_links: KIZUNA_PUBLIC_URL is not set, so the links would lead nowhere")
        expires = expiry(sent_at, surveys[survey_id])
        return score_urls(base_url, token(survey_id, customer_id, send_key, expires, signer))

    return nps_links


def sample_function(surveys: Mapping[int, int] | None = None) -> Callable[[int], list[dict[str, Any]]]:
    """``nps_links`` for checking and previewing a template: example URLs; with ``surveys`` it refuses an id that
    names no active survey (so a typo is found when the template is saved)."""

    def nps_links(survey_id: int) -> list[dict[str, Any]]:
        if surveys is not None and survey_id not in surveys:
            raise ValidationError(f"nps_links({survey_id!r}): no active survey with this id")
        return score_urls("https://example.invalid", "preview")

    return nps_links


class BatchLinks:
    """``nps_links`` for each message of a send batch: the active surveys and the signing key read once."""

    def __init__(self, surveys: Mapping[int, int], base_url: str) -> None:
        self.surveys = dict(surveys)
        self.base_url = base_url
        self.sign = keys.signer(PURPOSE)

    @classmethod
    def read(cls, session: Any) -> BatchLinks:
        from kizuna.config import get_settings
        from kizuna.surveys.service import active_link_days

        return cls(active_link_days(session), get_settings().public_url)

    def for_message(self, message: Any, customer_id: int | None) -> Callable[[int], list[dict[str, Any]]]:
        # The message's delivery key and creation time make the links: the same on every attempt and resend.
        return template_function(
            self.surveys,
            base_url=self.base_url,
            customer_id=customer_id,
            send_key=message.delivery_key,
            sent_at=message.created_at,
            sign=self.sign,
        )
