"""Claiming and releasing a ticket: no double handling.

A claim is one guarded UPDATE (``claimed_by IS NULL OR claimed_by = me``, not closed), so of two agents racing for
a ticket exactly one changes the row and the other gets a 409 naming the holder, on SQLite and on PostgreSQL
alike (PostgreSQL re-checks the condition on the row the first transaction committed). A reply takes the same
path (service.reply), so a ticket another agent holds cannot be answered either.
"""

from __future__ import annotations

from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import take_write_lock, utcnow
from kizuna.errors import Conflict, ValidationError
from kizuna.inquiries.models import Inquiry
from kizuna.inquiries.service import get_inquiry, reference, require_team, user_label


def claim(session: Session, *, actor: Actor, inquiry_id: int) -> Inquiry:
    """Take the ticket; a 409 naming the holder when another agent has it, or when it is closed."""
    require(actor, "inquiries:write")
    inquiry = get_inquiry(session, inquiry_id)
    require_team(session, actor, inquiry)
    if actor.user_id is None:
        raise ValidationError("only a signed-in user can claim an inquiry", field="claimed_by")
    take(session, actor, inquiry)
    audit.record(
        session, actor=actor, action="inquiry.claim", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=reference(inquiry.id),
    )  # fmt: skip
    return inquiry


def take(session: Session, actor: Actor, inquiry: Inquiry) -> None:
    # SQLite: two agents' UPDATEs at once could fail the second with "database is locked" instead of its 409.
    take_write_lock(session.connection())
    now = utcnow()
    table = Inquiry.__table__
    result = session.execute(
        update(table)
        .where(
            table.c.id == inquiry.id,
            table.c.status != "closed",
            or_(table.c.claimed_by.is_(None), table.c.claimed_by == actor.user_id),
        )
        .values(
            claimed_by=actor.user_id,
            claimed_at=case((table.c.claimed_by == actor.user_id, table.c.claimed_at), else_=now),
            status=case((table.c.status == "new", "open"), else_=table.c.status),
            version=table.c.version + 1,
            updated_at=now,
        )
    )
    session.refresh(inquiry)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return
    if inquiry.status == "closed":
        raise Conflict(
            f"inquiry {reference(inquiry.id)} is closed; reopen it before working it",
            key="error.inquiry_closed",
            params={"ref": reference(inquiry.id)},
        )
    holder = user_label(session, inquiry.claimed_by)
    raise Conflict(
        f"inquiry {reference(inquiry.id)} is already claimed by {holder}; it is theirs until they release it",
        key="error.inquiry_claimed",
        params={"ref": reference(inquiry.id), "holder": holder},
    )


def release(session: Session, *, actor: Actor, inquiry_id: int) -> Inquiry:
    """Give the ticket back to the queue; only its holder may, or a manager/admin (``inquiries:write_all``)."""
    require(actor, "inquiries:write")
    inquiry = get_inquiry(session, inquiry_id)
    table = Inquiry.__table__
    guard = [table.c.id == inquiry.id, table.c.claimed_by.is_not(None)]
    if not actor.can("inquiries:write_all"):
        guard.append(table.c.claimed_by == actor.user_id)
    take_write_lock(session.connection())
    result = session.execute(
        update(table).where(*guard).values(claimed_by=None, claimed_at=None, version=table.c.version + 1)
    )
    session.refresh(inquiry)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if inquiry.claimed_by is None:
            return inquiry  # nobody holds it: nothing to give back
        holder = user_label(session, inquiry.claimed_by)
        raise Conflict(
            f"inquiry {reference(inquiry.id)} is claimed by {holder}; only they or a manager can release it",
            key="error.inquiry_claimed",
            params={"ref": reference(inquiry.id), "holder": holder},
        )
    audit.record(
        session, actor=actor, action="inquiry.release", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=reference(inquiry.id),
    )  # fmt: skip
    return inquiry
