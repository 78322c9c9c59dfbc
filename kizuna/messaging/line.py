"""The LINE channel: push messages to customers whose LINE user id Kizuna knows and who have not blocked the account.

Registered at import (``channels.register``); the sender finds it by name (``channels.get("line")``). The
credentials live in ``line_settings`` (encrypted with ``kizuna.keys``) or, when none were saved there, in
``KIZUNA_LINE_CHANNEL_TOKEN`` / ``KIZUNA_LINE_CHANNEL_SECRET`` / ``KIZUNA_LINE_API_BASE``.

A customer's LINE address is a stored identity of kind ``line_user_id`` (made by a ``follow`` webhook event,
an import, a link or by hand). Whether they blocked the account is the newest of the follow/unfollow decisions
recorded for channel ``line`` (methods ``line_follow`` / ``line_block``, see ``line_inbound``): a block stops
every message, service ones included, while marketing consent itself is the sender's gate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers import identities
from kizuna.customers.models import Consent, CustomerIdentity, in_index_of
from kizuna.db import get_engine, new_session, utcnow
from kizuna.errors import KizunaError, ValidationError
from kizuna.keys import BadToken, decrypt, encrypt
from kizuna.messaging import channels
from kizuna.messaging.channels import Outgoing, PermanentFailure, SendFailure
from kizuna.messaging.line_client import RETRY_KEY_HOURS, LineClient, LineConfig, retry_key
from kizuna.messaging.line_models import LineSettings

IDENTITY_KIND = "line_user_id"
CONSENT_CHANNEL = "line"
FOLLOW_METHOD = "line_follow"
BLOCK_METHOD = "line_block"
_BATCH = 5000


# --- settings --------------------------------------------------------------------------------------------


def _row(session: Session) -> LineSettings | None:
    return session.get(LineSettings, 1)


def _plain(stored: str | None) -> str:
    if not stored:
        return ""
    try:
        return decrypt(stored)
    except BadToken:
        # Saved under another KIZUNA_SECRET_KEY: unusable, and the settings page says so.
        return ""


def load_config(session: Session) -> LineConfig:
    """The credentials to use: those saved on the settings page, else the ``KIZUNA_LINE_*`` settings."""
    settings = get_settings()
    row = _row(session)
    token = _plain(row.channel_token if row else None) or settings.line_channel_token
    secret = _plain(row.channel_secret if row else None) or settings.line_channel_secret
    base = (row.api_base if row else None) or settings.line_api_base
    return LineConfig(token=token, secret=secret, api_base=base, bot_basic_id=row.bot_basic_id if row else None)


@dataclass(frozen=True)
class SettingsView:
    """What the settings page and ``GET /api/v1/line/settings`` show: never a credential, only its last four."""

    api_base: str
    token_set: bool
    token_hint: str
    token_source: str  # saved | environment | none | unreadable
    secret_set: bool
    secret_source: str
    bot_basic_id: str | None
    updated_at: dt.datetime | None
    updated_by: str


def _source(stored: str | None, env_value: str) -> str:
    if stored:
        return "saved" if _plain(stored) else "unreadable"
    return "environment" if env_value else "none"


def view_settings(session: Session, *, actor: Actor) -> SettingsView:
    require(actor, "channels:manage")
    settings = get_settings()
    row = _row(session)
    config = load_config(session)
    return SettingsView(
        api_base=config.api_base,
        token_set=bool(config.token),
        token_hint=f"…{config.token[-4:]}" if len(config.token) >= 12 else ("…" if config.token else ""),
        token_source=_source(row.channel_token if row else None, settings.line_channel_token),
        secret_set=bool(config.secret),
        secret_source=_source(row.channel_secret if row else None, settings.line_channel_secret),
        bot_basic_id=config.bot_basic_id,
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by if row else "",
    )


def save_settings(
    session: Session,
    *,
    actor: Actor,
    channel_token: str | None = None,
    channel_secret: str | None = None,
    api_base: str | None = None,
    bot_basic_id: str | None = None,
) -> SettingsView:
    """Save what is given (None leaves a value as it is, "" clears it); credentials are stored encrypted."""
    require(actor, "channels:manage")
    row = _row(session)
    if row is None:
        row = LineSettings(id=1, updated_by=actor.label)
        session.add(row)
    changed: list[str] = []
    for name, value in (("channel_token", channel_token), ("channel_secret", channel_secret)):
        if value is None:
            continue
        value = value.strip()
        if any(c.isspace() for c in value) or len(value) > 1000:
            raise ValidationError(f"the {name.replace('_', ' ')} has spaces or is too long", field=name)
        setattr(row, name, encrypt(value) if value else None)
        changed.append(name)
    if api_base is not None:
        api_base = api_base.strip().rstrip("/")
        if api_base and not api_base.startswith(("https://", "http://")):
            raise ValidationError("the API base URL starts with https://", field="api_base")
        row.api_base = api_base or None
        changed.append("api_base")
    if bot_basic_id is not None:
        bot_basic_id = bot_basic_id.strip()
        if bot_basic_id and not (bot_basic_id.startswith("@") and 2 <= len(bot_basic_id) <= 64):
            raise ValidationError("the LINE ID of the account starts with @ (e.g. @abc1234)", field="bot_basic_id")
        row.bot_basic_id = bot_basic_id or None
        changed.append("bot_basic_id")
    row.updated_at = utcnow()
    row.updated_by = actor.label
    session.flush()
    # Which settings changed, never their values.
    audit.record(
        session,
        actor=actor,
        action="line.settings",
        entity_type="line_settings",
        entity_id=1,
        details={"changed": changed},
    )
    return view_settings(session, actor=actor)


class LineUnavailable(KizunaError):
    """LINE could not answer a question Kizuna asked it now (the quota, a link token)."""

    status_code = 502
    code = "line_unavailable"


def quota(session: Session, *, actor: Actor) -> dict[str, Any]:
    """This month's LINE message quota from LINE itself: type, limit (None: unlimited), used, remaining."""
    require(actor, "messages:read")
    try:
        with LineClient(load_config(session)) as client:
            return client.quota()
    except SendFailure as exc:
        raise LineUnavailable(f"LINE's quota could not be read: {exc}") from exc


def issue_link_token(session: Session, *, line_user_id: str) -> str:
    """A link token for LINE's account-link flow, issued by LINE for the user (callers check permissions)."""
    line_user_id = identities.normalise(IDENTITY_KIND, line_user_id)
    try:
        with LineClient(load_config(session)) as client:
            return client.link_token(line_user_id)
    except SendFailure as exc:
        raise LineUnavailable(f"LINE issued no link token: {exc}") from exc


# --- addresses -------------------------------------------------------------------------------------------


def blocked(session: Session, customer_ids: list[int]) -> set[int]:
    """Customers whose newest follow/unfollow decision on LINE is a block (``line_block``)."""
    methods = (FOLLOW_METHOD, BLOCK_METHOD)
    later = aliased(Consent)
    newest = (
        select(func.max(later.id))
        .where(later.customer_id == Consent.customer_id, later.channel == CONSENT_CHANNEL, later.method.in_(methods))
        .scalar_subquery()
    )
    found: set[int] = set()
    for start in range(0, len(customer_ids), _BATCH):
        query = select(Consent.customer_id).where(
            Consent.customer_id.in_(customer_ids[start : start + _BATCH]),
            Consent.channel == CONSENT_CHANNEL,
            Consent.method == BLOCK_METHOD,
            Consent.id == newest,
        )
        found.update(session.scalars(query))
    return found


def line_user_ids(session: Session, customer_ids: list[int]) -> dict[int, str]:
    """Each customer's newest LINE user id (a customer linked twice keeps both; the newest is used)."""
    found: dict[int, str] = {}
    for start in range(0, len(customer_ids), _BATCH):
        query = (
            select(CustomerIdentity.customer_id, CustomerIdentity.value)
            .where(
                CustomerIdentity.customer_id.in_(customer_ids[start : start + _BATCH]),
                CustomerIdentity.kind == IDENTITY_KIND,
                in_index_of(IDENTITY_KIND, CustomerIdentity.kind),
            )
            .order_by(CustomerIdentity.id)
        )
        found.update({customer_id: value for customer_id, value in session.execute(query)})
    return found


# --- the channel -----------------------------------------------------------------------------------------


class LineConnection:
    """Pushes for one batch of the sender, over one HTTP client."""

    def __init__(self, config: LineConfig) -> None:
        self.client = LineClient(config)

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        first = outgoing.extra.get("first_attempt_at")
        too_late = isinstance(first, dt.datetime) and utcnow() - first > dt.timedelta(hours=RETRY_KEY_HOURS)
        if outgoing.attempt > 1 and too_late:
            # LINE forgets a retry key after 24 hours: a retry now could deliver a message twice.
            raise PermanentFailure(
                f"first tried at {first.isoformat()}, longer ago than LINE keeps a retry key (24 hours): "
                "not retried, so that it cannot arrive twice",
                reason="retry_window_passed",
            )
        messages = outgoing.rendered.get("messages")
        key = retry_key(outgoing.delivery_key)
        return {**self.client.push(outgoing.address, messages, key=key), "retry_key": key}

    def close(self) -> None:
        self.client.close()


class LineChannel:
    name = "line"

    def addresses(self, session: Session, customer_ids: list[int]) -> dict[int, str]:
        """LINE user ids of the customers that have one and have not blocked the account."""
        ids = sorted(set(customer_ids))
        found = line_user_ids(session, ids)
        for customer_id in blocked(session, sorted(found)):
            del found[customer_id]
        return found

    @contextmanager
    def connect(self, session: Session | None = None) -> Iterator[LineConnection]:
        """A connection with the credentials read from ``session``'s database (the configured one if None)."""
        if session is None:
            with new_session(get_engine()) as own:
                config = load_config(own)
        else:
            config = load_config(session)
        connection = LineConnection(config)
        try:
            yield connection
        finally:
            connection.close()


CHANNEL = LineChannel()
channels.register(CHANNEL)
