"""Webhook receivers admins set up, and the hosts and networks they allowed although they are not public."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, UTCDateTime, utcnow


class WebhookEndpoint(Base):
    """A named receiver: messages name it (``{"endpoint": "crm-sync"}``) instead of repeating its URL.

    Its signing secret is random, stored encrypted and shown once, when it is made or rotated.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookAllow(Base):
    """A host name, address or network webhooks may reach although it is private (see ``messaging/ssrf.py``)."""

    __tablename__ = "webhook_allowlist"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry: Mapped[str] = mapped_column(String(255), unique=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))
