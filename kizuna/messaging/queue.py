"""Creating messages: the one way journeys, campaigns and service notices ask for something to be sent.

``queue`` / ``queue_many`` write message rows in the caller's transaction (so a journey step and the message it
sends commit together, or neither does) and never send anything themselves: the sender does, after commit.
The row's ``key`` is unique, so writing the same message twice (a replayed batch, a step run again after a
crash) adds nothing. Consent, suppressions, frequency caps and quiet hours are checked by the sender at send
time, not here: an unsubscribe that arrives after a message was queued must still stop it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.messaging.models import CHANNELS, KINDS, SOURCES, Message


@dataclass(frozen=True)
class NewMessage:
    key: str
    customer_id: int | None
    channel: str
    kind: str = "marketing"
    source: str = "manual"
    source_id: int | None = None
    source_step: str | None = None
    variant: str | None = None
    enrollment_id: int | None = None
    template_id: int | None = None
    content: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    due_at: dt.datetime | None = None
    # Written held (not due until released): the remainder of an A/B test waiting for its winner.
    held: bool = False

    def check(self) -> None:
        if self.channel not in CHANNELS:
            raise ValidationError(f"unknown channel {self.channel!r}; one of {', '.join(CHANNELS)}", field="channel")
        if self.kind not in KINDS:
            raise ValidationError(f"unknown message kind {self.kind!r}; one of {', '.join(KINDS)}", field="kind")
        if self.source not in SOURCES:
            raise ValidationError(f"unknown source {self.source!r}; one of {', '.join(SOURCES)}", field="source")
        if not self.key or len(self.key) > 200:
            raise ValidationError("a message key must have 1 to 200 characters", field="key")
        if self.template_id is None and not self.content:
            raise ValidationError("a message needs a template or content", field="template_id")


def new_delivery_key() -> str:
    return uuid.uuid4().hex


def queue(session: Session, message: NewMessage) -> Message | None:
    """Write one message; ``None`` when a message with this key already exists (nothing is added)."""
    if not queue_many(session, [message]):
        return None
    return session.scalar(select(Message).where(Message.key == message.key))


def queue_many(session: Session, messages: list[NewMessage]) -> list[str]:
    """Write many messages in the caller's transaction, skipping keys that exist already; returns the new keys.

    One executemany for the lot (a campaign's whole audience, a journey step's batch), no ORM object per row.
    """
    if not messages:
        return []
    from kizuna.imports.bulk import insert_rows  # the bulk writer lives with the importers

    for m in messages:
        m.check()
    keys = [m.key for m in messages]
    existing: set[str] = set()
    column = Message.__table__.c.key  # Core, not the ORM entity: no ORM machinery for 100,000 keys
    for start in range(0, len(keys), 5000):
        found = session.execute(select(column).where(column.in_(keys[start : start + 5000])))
        existing.update(found.scalars())
    now = utcnow()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in messages:
        if m.key in existing or m.key in seen:
            continue
        seen.add(m.key)
        rows.append(
            {
                "key": m.key,
                "delivery_key": new_delivery_key(),
                "customer_id": m.customer_id,
                "channel": m.channel,
                "kind": m.kind,
                "source": m.source,
                "source_id": m.source_id,
                "source_step": m.source_step,
                "variant": m.variant,
                "enrollment_id": m.enrollment_id,
                "template_id": m.template_id,
                "content": m.content,
                "context": m.context,
                "status": "held" if m.held else "queued",
                "attempts": 0,
                "due_at": m.due_at or now,
                "created_at": now,
            }
        )
    if rows:
        session.flush()  # rows the ORM still holds (a template just added) go first: ours may refer to them
        insert_rows(session, Message.__table__, rows)
    return [r["key"] for r in rows]
