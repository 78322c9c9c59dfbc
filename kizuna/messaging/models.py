"""Messages (one row per recipient and send), what happened to them, suppressions and templates.

A message row is created in the transaction that decides to send (a journey step, a campaign, a service
notice) and is itself the queue the sender works through: its state is kept per recipient, never per batch.
``delivery_key`` is fixed when the row is written, before any attempt, and goes out with every attempt (the
email's Message-ID, LINE's ``X-Line-Retry-Key``, the webhook's ``Idempotency-Key``), so that a repeat after a
crash is recognisable by the receiver.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow

CHANNELS = ("email", "line", "webhook")
KINDS = ("marketing", "service")
SOURCES = ("journey", "campaign", "manual", "system")
# queued: waiting to be sent (or delayed by quiet hours); sending: claimed by a sender under a lease;
# sent: the receiving server accepted it; skipped: deliberately not sent (no consent, suppressed, capped ...);
# failed: gave up (permanent refusal, render error, attempts used up); held: not due until released (a paused
# campaign's messages, the remainder of an A/B test waiting for its winner). Opens, clicks, bounces and complaints
# are stamped on the row and recorded as message events; they do not change the status.
STATUSES = ("queued", "sending", "sent", "skipped", "failed", "held")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The sender's claim walks due rows in order.
        Index("ix_messages_due", "status", "due_at", "id"),
        # Frequency caps count a customer's recent marketing sends per channel.
        Index("ix_messages_customer_sent", "customer_id", "channel", "sent_at"),
        Index("ix_messages_source", "source", "source_id", "source_step"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # Who made it and for what, unique: creating the same message twice (a replayed batch, a journey step run
    # again after a crash) is a no-op, e.g. ``journey:12:enrollment:345:step:welcome``.
    key: Mapped[str] = mapped_column(String(200), unique=True)
    # Fixed before the first attempt and sent with every attempt (Message-ID / X-Line-Retry-Key / Idempotency-Key).
    delivery_key: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    source: Mapped[str] = mapped_column(String(16), default="manual")
    source_id: Mapped[int | None] = mapped_column()
    source_step: Mapped[str | None] = mapped_column(String(64))
    variant: Mapped[str | None] = mapped_column(String(32))
    enrollment_id: Mapped[int | None] = mapped_column(BigId)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("message_templates.id", ondelete="SET NULL"))
    # Inline content when there is no template (subject/html/text, LINE messages, webhook url/payload) and the
    # extra render context the creator supplies (the order that triggered it ...).
    content: Mapped[dict] = mapped_column(JSONType, default=dict)
    context: Mapped[dict] = mapped_column(JSONType, default=dict)
    # The address actually used, fixed at send time: an email, a LINE user id, a webhook URL.
    address: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    # Why it was skipped or failed, as a stable code (no_consent, suppressed, capped, no_address, render_error,
    # refused, ...) with the detail in ``error``.
    reason: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # When a sender first claimed it: a channel whose idempotency key expires (LINE keeps X-Line-Retry-Key for 24
    # hours) refuses to retry past it rather than risk a second delivery.
    first_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    complained_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class MessageEvent(Base):
    """What happened to a sent message: open, click, unsubscribe, bounce, complaint, delivered (LINE/webhook)."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_message", "message_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(2000))
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Base):
    """An address nothing is sent to, whatever the kind: hard bounce, complaint, unsubscribe, manual."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # Normalised (an email lower-cased) so that a lookup by the address we are about to send to finds it.
    address: Mapped[str] = mapped_column(String(2000))
    reason: Mapped[str] = mapped_column(String(32))  # hard_bounce | soft_bounces | complaint | unsubscribe | manual
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))


class Template(Base):
    """A message's content with personalisation (sandboxed Jinja2), validated when saved."""

    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    kind: Mapped[str] = mapped_column(String(16), default="marketing")
    # email: subject, html, text; line: messages (LINE message objects with templated text); webhook: payload.
    subject: Mapped[str] = mapped_column(String(500), default="")
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Email only: who this template's mails come from, when not the channel's sender (support@ for service
    # mail, news@ for the newsletter). Empty: the email settings' sender. Bounces still go to the settings' address.
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
