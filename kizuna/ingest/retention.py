"""Anonymous visitor profiles age out: removed after ``KIZUNA_ANONYMOUS_RETENTION_DAYS`` without an event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.events.models import Event
from kizuna.ingest.stitching import ANONYMOUS


def purge_anonymous(session: Session, *, actor: Actor, days: int | None = None, limit: int = 10_000) -> int:
    """Delete up to ``limit`` anonymous profiles with no event received in ``days``; returns how many.

    Their events, identities and everything else that names them go with them (the foreign keys cascade); a
    profile that has been identified is no longer ``anonymous`` and is never touched.
    """
    require(actor, "customers:delete")
    days = days or get_settings().anonymous_retention_days
    cutoff: dt.datetime = utcnow() - dt.timedelta(days=days)
    recent = exists().where(Event.customer_id == Customer.id, Event.received_at >= cutoff)
    ids = list(
        session.scalars(
            select(Customer.id)
            .where(Customer.status == ANONYMOUS, Customer.created_at < cutoff, ~recent)
            .order_by(Customer.id)
            .limit(limit)
        )
    )
    if not ids:
        return 0
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        session.execute(delete(Customer).where(Customer.id.in_(chunk)).execution_options(synchronize_session=False))
    audit.record(
        session,
        actor=actor,
        action="customer.purge_anonymous",
        entity_type="customer",
        details={"count": len(ids), "days": days, "first_id": ids[0], "last_id": ids[-1]},
        summary=f"{len(ids)} anonymous profiles older than {days} days",
    )
    return len(ids)
