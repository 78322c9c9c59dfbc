"""Linking a LINE user to a known customer.

A ``follow`` event tells Kizuna only a LINE user id, so it makes an anonymous LINE profile (``line_inbound``).
Two ways tie that LINE user to a customer Kizuna knows:

- **A signed link** (``link_url``), sent to the customer in a mail or shown on the website where they are
  signed in. It opens a page (``/line/link/<token>``) whose button opens a chat with the LINE account with a
  code typed in; the customer sends it, LINE delivers the message to the webhook with their user id, and the
  code (the token itself: ``keys.sign("line-link", ...)``, unforgeable) says which customer it is.
- **LINE's account-link flow**: a site that knows the customer gets a link token for the LINE user from LINE
  (``POST /v2/bot/user/{userId}/linkToken``), asks Kizuna for a redirect (``start_account_link``: a nonce is
  stored for the customer) and sends the user to LINE, which answers with an ``accountLink`` webhook event
  carrying the nonce.

Either way ``link`` moves the LINE identity onto the customer: the anonymous profile, if there is one, is merged
into the customer (``customers.merge``: its consents, events and identities move over, its id keeps resolving),
the identity's source says how it was linked, and the 360 page shows it. Each token or nonce links once.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers import identities
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.customers.service import get_customer
from kizuna.db import utcnow
from kizuna.errors import Conflict, ValidationError
from kizuna.keys import BadToken, sign, unsign
from kizuna.messaging.line import IDENTITY_KIND
from kizuna.messaging.line_models import LineLink
from kizuna.outbox.service import emit

PURPOSE = "line-link"
# The code the customer sends to the LINE account: this prefix, then the signed token.
CODE_PREFIX = "LINK-"
_CODE = re.compile(re.escape(CODE_PREFIX) + r"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
# An anonymous LINE profile: a customer made by a follow event, holding nothing but the LINE user id.
ANONYMOUS = "anonymous"
ACCOUNT_LINK_URL = "https://access.line.me/dialog/bot/accountLink"
# LINE's link token lasts 10 minutes; a nonce waiting longer than this is not accepted.
ACCOUNT_LINK_MINUTES = 30
SOURCES = {"signed_link": "line_link", "account_link": "line_account_link"}


def is_anonymous(customer: Customer) -> bool:
    return bool((customer.attributes or {}).get(ANONYMOUS))


# --- signed links ----------------------------------------------------------------------------------------


def make_token(customer_id: int, *, now: float | None = None) -> str:
    """A signed link token for the customer, good for ``KIZUNA_LINE_LINK_DAYS`` and for one link."""
    expires = int((time.time() if now is None else now) + get_settings().line_link_days * 86400)
    return sign(PURPOSE, f"{customer_id}.{expires}.{secrets.token_hex(6)}")


def read_token(token: str, *, now: float | None = None) -> tuple[int, str]:
    """(customer id, nonce) inside a link token; ``BadToken`` when forged, altered or expired."""
    value = unsign(PURPOSE, token)
    try:
        customer_id, expires, nonce = value.split(".")
        customer, until = int(customer_id), int(expires)
    except ValueError as exc:
        raise BadToken("the link is malformed") from exc
    if (time.time() if now is None else now) > until:
        raise BadToken("the link has expired; ask for a new one", key="error.line_link_expired")
    return customer, nonce


def link_path(customer_id: int) -> str:
    """The page a customer opens to link their LINE account (join it to the site's public URL)."""
    return f"/line/link/{make_token(customer_id)}"


def code_of(token: str) -> str:
    return f"{CODE_PREFIX}{token}"


def chat_url(bot_basic_id: str | None, token: str) -> str | None:
    """A URL that opens a chat with the account, the code typed in (LINE's oaMessage scheme), if the ID is known."""
    if not bot_basic_id:
        return None
    return f"https://line.me/R/oaMessage/{quote(bot_basic_id)}/?{quote(code_of(token))}"


@dataclass(frozen=True)
class LinkOffer:
    url: str
    code: str
    expires_at: dt.datetime


def offer_link(session: Session, *, actor: Actor, customer_id: int, base_url: str) -> LinkOffer:
    """A signed link for a customer to link their LINE account (to put in a mail or on the website)."""
    require(actor, "customers:write")
    customer = get_customer(session, customer_id)
    if customer.status != "active":
        raise ValidationError(f"customer {customer.id} is {customer.status}", field="customer_id")
    token = make_token(customer.id)
    audit.record(
        session,
        actor=actor,
        action="line.link_offered",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
    )
    days = get_settings().line_link_days
    return LinkOffer(
        url=f"{base_url.rstrip('/')}/line/link/{token}",
        code=code_of(token),
        expires_at=utcnow() + dt.timedelta(days=days),
    )


def find_code(text: str) -> str | None:
    """The link token inside a chat message, if it carries one."""
    found = _CODE.search(text or "")
    return found.group(1) if found else None


def link_with_code(session: Session, *, actor: Actor, text: str, line_user_id: str) -> LineLink | None:
    """Link the sender of a chat message that carries a valid code; None when it carries none (or a bad one)."""
    token = find_code(text)
    if token is None:
        return None
    try:
        customer_id, nonce = read_token(token)
    except BadToken:
        return None
    used = session.scalar(select(LineLink).where(LineLink.nonce == nonce))
    if used is not None:
        return None  # a link works once; the customer asks for a new one
    row = LineLink(nonce=nonce, customer_id=customer_id, method="signed_link", status="pending")
    session.add(row)
    session.flush()
    return link(session, actor=actor, row=row, line_user_id=line_user_id)


# --- LINE's account-link flow ----------------------------------------------------------------------------


def start_account_link(session: Session, *, actor: Actor, customer_id: int, link_token: str) -> str:
    """Where to send the LINE user next: LINE's account-link page with a nonce stored for this customer."""
    require(actor, "customers:write")
    if not link_token or len(link_token) > 200 or not link_token.isprintable():
        raise ValidationError("link_token is the token LINE issued for the user", field="link_token")
    customer = get_customer(session, customer_id)
    nonce = secrets.token_urlsafe(24)
    session.add(LineLink(nonce=nonce, customer_id=customer.id, method="account_link", status="pending"))
    audit.record(
        session,
        actor=actor,
        action="line.account_link_started",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
    )
    return f"{ACCOUNT_LINK_URL}?{urlencode({'linkToken': link_token, 'nonce': nonce})}"


def complete_account_link(session: Session, *, actor: Actor, nonce: str, line_user_id: str) -> LineLink | None:
    """LINE's ``accountLink`` event: link the user to the customer the nonce was made for (once, while fresh)."""
    row = session.scalar(select(LineLink).where(LineLink.nonce == nonce, LineLink.method == "account_link"))
    if row is None or row.status != "pending":
        return None
    if utcnow() - row.created_at > dt.timedelta(minutes=ACCOUNT_LINK_MINUTES):
        row.status = "expired"
        return None
    return link(session, actor=actor, row=row, line_user_id=line_user_id)


# --- the link itself -------------------------------------------------------------------------------------


def link(session: Session, *, actor: Actor, row: LineLink, line_user_id: str) -> LineLink:
    """Give the customer of ``row`` the LINE identity, merging the anonymous profile that held it."""
    user_id = identities.normalise(IDENTITY_KIND, line_user_id)
    customer = get_customer(session, row.customer_id)
    if customer.status != "active":
        raise ValidationError(f"customer {customer.id} is {customer.status}", field="customer_id")
    holder = identities.owner(session, IDENTITY_KIND, user_id)
    merged_id = None
    if holder is None:
        identities.add_identity(session, actor=actor, customer=customer, kind_name=IDENTITY_KIND, value=user_id)
    elif holder != customer.id:
        other = get_customer(session, holder)
        if not is_anonymous(other):
            raise Conflict(
                f"LINE user {user_id} belongs to customer {other.id} already; merge the two if they are one person",
                field="line_user_id",
            )
        # The marker stays behind: the merge would otherwise copy it onto the known customer.
        other.attributes = {k: v for k, v in (other.attributes or {}).items() if k != ANONYMOUS}
        session.flush()
        merge_customers(
            session, actor=actor, survivor_id=customer.id, merged_id=other.id, reason=f"LINE link ({row.method})"
        )
        merged_id = other.id
    identity = session.scalar(
        select(CustomerIdentity).where(
            CustomerIdentity.kind == IDENTITY_KIND,
            CustomerIdentity.value == user_id,
            identities.in_index_of(IDENTITY_KIND, CustomerIdentity.kind),
        )
    )
    assert identity is not None and identity.customer_id == customer.id
    identity.source = SOURCES[row.method]
    row.customer_id = customer.id
    row.status = "linked"
    row.line_user_id = user_id
    row.merged_id = merged_id
    row.linked_at = utcnow()
    details = {"method": row.method, "merged_id": merged_id}
    audit.record(
        session,
        actor=actor,
        action="line.linked",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        details=details,
    )
    emit(session, "line.linked", {"customer_id": customer.id, **details}, customer_id=customer.id, origin=actor.origin)
    return row
