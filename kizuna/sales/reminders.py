"""Task reminders: a task's ``remind_at`` schedules an outbox message due then; when the worker delivers it and
the task is still open with that same reminder time, the task is marked reminded (the owner's home page shows it
under "reminders") and ``task.reminder`` is announced, for webhooks and journeys.

Scheduling goes through the outbox (``emit(..., available_at=remind_at)``) rather than a polling loop, so a
reminder is sent once even with several workers, and survives restarts. A reminder moved or a task closed
before the time leaves the earlier message to find nothing to do.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.db import utcnow
from kizuna.outbox.registry import Delivery, declare
from kizuna.outbox.service import emit
from kizuna.sales.models import Task

SCHEDULED = "task.reminder_due"  # internal: due at the reminder time, handled below
ANNOUNCED = "task.reminder"  # public: the reminder went out (webhooks, journeys)
SHOWN = 20


def schedule(session: Session, task: Task, *, origin: str) -> None:
    """Have the worker send ``task``'s reminder at its ``remind_at`` (called when a task gets or changes one)."""
    task.reminded_at = None
    if task.remind_at is None or task.status != "open":
        return
    emit(
        session,
        SCHEDULED,
        {"task_id": task.id, "remind_at": task.remind_at.isoformat()},
        customer_id=task.customer_id,
        origin=origin,
        available_at=task.remind_at,
    )


def _same_time(stored: dt.datetime | None, sent: str | None) -> bool:
    if stored is None or not sent:
        return False
    if stored.tzinfo is None:
        stored = stored.replace(tzinfo=dt.UTC)
    return stored == dt.datetime.fromisoformat(sent)


@declare("sales.task_reminders", SCHEDULED)
def send_reminder(session: Session, delivery: Delivery) -> None:
    """The reminder is due: mark the task reminded and announce it, unless it was closed or moved since."""
    task = session.get(Task, delivery.payload.get("task_id"))
    if task is None or task.status != "open" or task.reminded_at is not None:
        return
    if not _same_time(task.remind_at, delivery.payload.get("remind_at")):
        return  # the reminder was moved: the message scheduled for the new time sends it
    task.reminded_at = utcnow()
    session.flush()
    emit(
        session,
        ANNOUNCED,
        {
            "task_id": task.id,
            "title": task.title,
            "owner_id": task.owner_id,
            "remind_at": task.remind_at.isoformat() if task.remind_at else None,
            "due_at": task.due_at.isoformat() if task.due_at else None,
            "customer_id": task.customer_id,
            "company_id": task.company_id,
            "deal_id": task.deal_id,
        },
        customer_id=task.customer_id,
        origin="system",
    )


def reminders(session: Session, *, user_id: int | None, limit: int = SHOWN) -> list[Task]:
    """The user's open tasks whose reminder went out, latest first (the home page's "reminders")."""
    if user_id is None:
        return []
    query = (
        select(Task)
        .where(Task.owner_id == user_id, Task.status == "open", Task.reminded_at.is_not(None))
        .order_by(Task.reminded_at.desc(), Task.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
