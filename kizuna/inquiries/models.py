"""Inquiries (tickets), their threads of messages, what happened to them (the timeline's entries), categories and
macros (saved replies).

An inquiry is claimed by one agent at a time (``claimed_by``); the claim is taken with one guarded UPDATE
(claims.claim), so two agents racing for a ticket cannot both win on SQLite or PostgreSQL. SLA due times are
fixed when the ticket is opened (``first_response_due_at``, ``resolution_due_at``) from the per-priority targets
of the settings, so a later change of the targets does not move the deadlines of tickets already open; they move
forward only by the business time a ticket spent waiting for the customer (sla.pause / sla.resume).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Timestamped, UTCDateTime, Versioned, utcnow

STATUSES = ("new", "open", "pending", "resolved", "closed")
# A ticket in one of these is still to be worked: queues, SLA warnings and repeat matching look at them.
OPEN_STATUSES = ("new", "open", "pending")
PRIORITIES = ("low", "normal", "high", "urgent")
# phone / visit: an agent typed in what a customer said on the phone or at the counter (/inquiries/new).
CHANNELS = ("web_form", "api", "email", "chat", "phone", "visit")
DIRECTIONS = ("in", "out", "note")
EVENT_KINDS = ("opened", "replied", "received", "resolved", "reopened", "closed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class InquiryCategory(Timestamped, Versioned, Base):
    """A topic an inquiry is filed under (admin-managed); names are data in both languages."""

    __tablename__ = "inquiry_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    name_en: Mapped[str | None] = mapped_column(String(200))
    # The team a new ticket of this category goes to when the ticket names none.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)


class InquiryMacro(Timestamped, Versioned, Base):
    """A saved reply an agent inserts into the reply form."""

    __tablename__ = "inquiry_macros"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    body: Mapped[str] = mapped_column(Text)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("inquiry_categories.id", ondelete="SET NULL"))


class Inquiry(Timestamped, Versioned, Base):
    __tablename__ = "inquiries"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        # Queues: open tickets by their first-response deadline.
        Index("ix_inquiries_status_due", "status", "first_response_due_at", "id"),
        # Repeat matching: a customer's open ticket of a category.
        Index("ix_inquiries_customer_category", "customer_id", "category_id", "status"),
        Index("ix_inquiries_claimed_by", "claimed_by", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(12), default="new")
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    channel: Mapped[str] = mapped_column(String(12), default="api")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("inquiry_categories.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), index=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The address replies go to (the sender of the mail, or the form's address), kept as given.
    reply_to: Mapped[str | None] = mapped_column(String(320))
    first_responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The last time the customer wrote: a repeat within the window is appended to this ticket.
    last_customer_message_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # While the ticket waits for the customer (pending) its SLA clocks stop: when it went pending, and, summed over
    # every pending spell, the business time paused (what moved the due times) and the wall-clock time pending
    # (what the report takes off the elapsed time to show the agents' own time).
    sla_paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sla_paused_seconds: Mapped[int] = mapped_column(default=0, server_default="0")
    pending_seconds: Mapped[int] = mapped_column(default=0, server_default="0")


class InquiryMessage(Base):
    """One message of a ticket's thread: from the customer (in), to the customer (out) or an internal note."""

    __tablename__ = "inquiry_messages"
    __table_args__ = (
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        Index("ix_inquiry_messages_inquiry", "inquiry_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inquiry_id: Mapped[int] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(4))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who wrote it as shown: an agent's name, the customer's address, "bot" for a chat transcript's bot lines.
    author_label: Mapped[str] = mapped_column(String(320), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    # The e-mail Message-ID (ours for a reply, fixed before the first attempt; theirs for a mail in), unique so
    # that a mail delivered twice (a relay retry, a poll after a crash) is threaded once.
    email_message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    # The message row the reply goes out through (kizuna/messaging), for its delivery status.
    outgoing_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # A mail in as received (headers and body), so that nothing is lost when its decoding was imperfect.
    raw: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InquiryEvent(Base):
    """What happened to a ticket (opened, replied, received, resolved ...): the customer timeline's entries."""

    __tablename__ = "inquiry_events"
    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
        Index("ix_inquiry_events_customer_at", "customer_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    inquiry_id: Mapped[int] = mapped_column(ForeignKey("inquiries.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    subject: Mapped[str] = mapped_column(String(300), default="")
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ = ["Inquiry", "InquiryCategory", "InquiryEvent", "InquiryMacro", "InquiryMessage"]
