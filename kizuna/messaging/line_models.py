"""What Kizuna keeps for LINE: the channel's settings, the webhook events already handled, and account links."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, UTCDateTime, utcnow


class LineSettings(Base):
    """The LINE channel's credentials (encrypted with ``kizuna.keys.encrypt``); one row, id 1.

    Empty values fall back to ``KIZUNA_LINE_*``, so a deployment may keep the token in its environment instead.
    """

    __tablename__ = "line_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_token: Mapped[str | None] = mapped_column(Text)
    channel_secret: Mapped[str | None] = mapped_column(Text)
    api_base: Mapped[str | None] = mapped_column(String(500))
    # The account's LINE ID (@abc1234): the signed link page opens a chat with it, the code typed in.
    bot_basic_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


class LineWebhookEvent(Base):
    """A webhook event from LINE already handled: LINE redelivers with the same ``webhookEventId``."""

    __tablename__ = "line_webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    redelivery: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LineLink(Base):
    """A LINE user linked to a known customer (or, ``pending``, an account link waiting for LINE's event).

    ``nonce`` is unique, so a signed link or an account-link nonce links once: a forwarded mail cannot be used
    again to tie another LINE account to the customer.
    """

    __tablename__ = "line_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))  # signed_link | account_link
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | linked
    line_user_id: Mapped[str | None] = mapped_column(String(64))
    # The anonymous LINE profile folded into the customer by the link, if there was one.
    merged_id: Mapped[int | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
