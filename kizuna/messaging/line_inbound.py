"""LINE's webhook: follows, blocks, account links and link codes, verified and handled once each.

LINE signs each delivery: ``x-line-signature`` is the Base64 HMAC-SHA256 of the raw body under the channel
secret, and anything else is refused before the body is read as JSON. Each event has a ``webhookEventId`` that
stays the same when LINE redelivers it, so an event is handled once: its id is recorded in the transaction that
handles it.

- ``follow``: the LINE user's profile (the customer holding the LINE user id, or a new anonymous LINE profile
  holding only it) gets a consent granted for channel ``line`` with method ``line_follow``; ``line.followed``.
- ``unfollow`` (a block): a consent withdrawal with method ``line_block``, which also stops every message to the
  user (``line.LineChannel.addresses``); ``line.unfollowed``.
- ``accountLink`` and a chat message carrying a link code: see ``linking``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.customers import identities
from kizuna.customers.models import Consent
from kizuna.customers.schemas import ConsentCreate, CustomerCreate
from kizuna.customers.service import create_customer, get_customer, record_consent
from kizuna.db import take_write_lock
from kizuna.errors import KizunaError, NotAuthenticated, ValidationError
from kizuna.messaging import linking
from kizuna.messaging.line import BLOCK_METHOD, CONSENT_CHANNEL, FOLLOW_METHOD, IDENTITY_KIND, load_config
from kizuna.messaging.line_models import LineWebhookEvent
from kizuna.outbox.service import emit

# Changes made for LINE's webhook: live activity from outside (journeys react to it), done by the system.
ACTOR = Actor.system("line", origin="api")
log = logging.getLogger("kizuna.line")
SIGNATURE_HEADER = "x-line-signature"


def signature(secret: str, body: bytes) -> str:
    """What LINE puts in ``x-line-signature`` for ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, header: str | None) -> None:
    """Refuse a delivery not signed with the channel secret (``NotAuthenticated``, 401)."""
    if not secret:
        raise NotAuthenticated(
            "no LINE channel secret is configured, so LINE's webhooks cannot be verified; save it on the LINE "
            "settings page or set KIZUNA_LINE_CHANNEL_SECRET"
        )
    if not header or not hmac.compare_digest(signature(secret, body), header.strip()):
        raise NotAuthenticated("the x-line-signature does not match the body: not a webhook from this LINE channel")


def handle_delivery(session: Session, *, body: bytes, signature_header: str | None) -> dict[str, int]:
    """Verify and handle one webhook delivery in the caller's transaction; counts of what was done, by kind."""
    verify(load_config(session).secret, body, signature_header)
    try:
        document = json.loads(body)
        events = document.get("events", [])
        if not isinstance(events, list):
            raise TypeError
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationError("the webhook body is not LINE's JSON ({events: [...]})", field="events") from exc
    # SQLite: take the write lock before the first read, so two deliveries at once cannot deadlock.
    take_write_lock(session.connection())
    done: Counter[str] = Counter()
    for event in events:
        if isinstance(event, dict):
            done[handle_event(session, event)] += 1
    return dict(done)


def _first_time(session: Session, event: dict[str, Any]) -> bool:
    """Record the event's ``webhookEventId``; False when it was handled before (a redelivery)."""
    event_id = event.get("webhookEventId")
    if not isinstance(event_id, str) or not event_id:
        return True  # nothing to recognise it by
    values = {
        "webhook_event_id": event_id[:64],
        "type": str(event.get("type", ""))[:32],
        "redelivery": bool((event.get("deliveryContext") or {}).get("isRedelivery")),
    }
    statement = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = session.scalar(
        statement(LineWebhookEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["webhook_event_id"])
        .returning(LineWebhookEvent.id)
    )
    return inserted is not None


def _when(event: dict[str, Any]) -> dt.datetime | None:
    stamp = event.get("timestamp")
    if not isinstance(stamp, int):
        return None
    return min(dt.datetime.fromtimestamp(stamp / 1000, dt.UTC), dt.datetime.now(dt.UTC))


def _user_id(event: dict[str, Any]) -> str | None:
    # Only one-to-one chats: a follow, a block or a link code comes from the user themselves, never a group.
    source = event.get("source") or {}
    user_id = source.get("userId") if isinstance(source, dict) and source.get("type") == "user" else None
    try:
        return identities.normalise(IDENTITY_KIND, user_id) if user_id else None
    except ValidationError:
        return None


def handle_event(session: Session, event: dict[str, Any]) -> str:
    """Handle one event; what was done (``followed``, ``duplicate``, ``ignored`` ...)."""
    if not _first_time(session, event):
        return "duplicate"
    kind = event.get("type")
    user_id = _user_id(event)
    if user_id is None:
        return "ignored"
    if kind == "follow":
        unblocked = bool((event.get("follow") or {}).get("isUnblocked"))
        return "followed" if follow(session, user_id=user_id, at=_when(event), unblocked=unblocked) else "outdated"
    if kind == "unfollow":
        if identities.owner(session, IDENTITY_KIND, user_id) is None:
            return "ignored"
        return "unfollowed" if unfollow(session, user_id=user_id, at=_when(event)) else "outdated"
    if kind in ("accountLink", "message"):
        try:
            # A link that cannot be made (the LINE user belongs to another known customer) is undone alone.
            with session.begin_nested():
                return "linked" if _link(session, kind, event, user_id) else "ignored"
        except KizunaError as exc:
            log.warning("LINE link from %s refused: %s", user_id, exc.message)
            return "refused"
    return "ignored"


def _link(session: Session, kind: str, event: dict[str, Any], user_id: str) -> bool:
    if kind == "accountLink":
        link = event.get("link") or {}
        if link.get("result") == "ok" and isinstance(link.get("nonce"), str):
            return (
                linking.complete_account_link(session, actor=ACTOR, nonce=link["nonce"], line_user_id=user_id)
                is not None
            )
        return False
    message = event.get("message") or {}
    if message.get("type") == "text" and isinstance(message.get("text"), str):
        return linking.link_with_code(session, actor=ACTOR, text=message["text"], line_user_id=user_id) is not None
    return False


def _outdated(session: Session, customer_id: int, at: dt.datetime | None) -> bool:
    """A follow or block that happened before the newest one on record (a redelivery arriving late) is not news.

    Decisions are in force by the order they are recorded, so recording it would undo the newer one.
    """
    if at is None:
        return False
    newest = session.scalar(
        select(func.max(Consent.recorded_at)).where(
            Consent.customer_id == customer_id,
            Consent.channel == CONSENT_CHANNEL,
            Consent.method.in_((FOLLOW_METHOD, BLOCK_METHOD)),
        )
    )
    return newest is not None and newest > at


def follow(session: Session, *, user_id: str, at: dt.datetime | None = None, unblocked: bool = False) -> int | None:
    """The LINE user follows (or unblocks) the account: their profile, made anonymous if new, gets consent.

    The customer's id; None when the follow is older than the newest follow or block on record.
    """
    owner = identities.owner(session, IDENTITY_KIND, user_id)
    if owner is None:
        owner = _new_profile(session, user_id)
    if owner is None:
        # LINE delivered the same follow twice at once (its webhooks are retried) and the other request made the
        # profile first: this follow is theirs too.
        owner = identities.owner(session, IDENTITY_KIND, user_id)
        assert owner is not None
    customer = get_customer(session, owner)
    if _outdated(session, customer.id, at):
        return None
    decision = ConsentCreate(
        channel=CONSENT_CHANNEL, status="granted", method=FOLLOW_METHOD, source="LINE follow", recorded_at=at
    )
    record_consent(session, actor=ACTOR, customer_id=customer.id, data=decision)
    payload = {"customer_id": customer.id, "anonymous": linking.is_anonymous(customer), "unblocked": unblocked}
    emit(session, "line.followed", payload, customer_id=customer.id, origin=ACTOR.origin, occurred_at=at)
    return customer.id


def _new_profile(session: Session, user_id: str) -> int | None:
    """An anonymous profile owning ``user_id``; None when a parallel request stored that LINE id first."""
    try:
        with session.begin_nested():
            customer = create_customer(
                session,
                actor=ACTOR,
                data=CustomerCreate(source="line", lifecycle_stage="lead", attributes={linking.ANONYMOUS: True}),
            )
            identity, _ = identities.add_identity(
                session, actor=ACTOR, customer=customer, kind_name=IDENTITY_KIND, value=user_id
            )
            identity.source = FOLLOW_METHOD
            session.flush()
    except IntegrityError:
        return None
    return customer.id


def unfollow(session: Session, *, user_id: str, at: dt.datetime | None = None) -> int | None:
    """The LINE user blocked the account: a consent withdrawal (``line_block``).

    The customer's id; None for an unknown user, or a block older than the newest follow or block on record.
    """
    owner = identities.owner(session, IDENTITY_KIND, user_id)
    if owner is None:
        return None
    customer = get_customer(session, owner)
    if _outdated(session, customer.id, at):
        return None
    decision = ConsentCreate(
        channel=CONSENT_CHANNEL, status="withdrawn", method=BLOCK_METHOD, source="LINE block", recorded_at=at
    )
    record_consent(session, actor=ACTOR, customer_id=customer.id, data=decision)
    emit(
        session,
        "line.unfollowed",
        {"customer_id": customer.id},
        customer_id=customer.id,
        origin=ACTOR.origin,
        occurred_at=at,
    )
    return customer.id
