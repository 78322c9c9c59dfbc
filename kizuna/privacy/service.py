"""Third-party provision records: written by every hand-over of personal data to another company, listed for
admins and on the customer's 360 page, and purged once the three years APPI asks for have passed.

``record_provisions`` is the one way to write them (audience exports, webhooks to other companies); it takes
the caller's session and never commits, so the record lands in the same transaction as the hand-over's audit
entry, or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.listing import list_page
from kizuna.privacy.filters import PROVISION_FILTERS
from kizuna.privacy.models import ThirdPartyProvision

# APPI (個人情報保護法 art. 29/30, enforcement rules art. 14/18): records of provision to a third party are kept
# three years from the provision (one year only for records made per transaction under a contract with the
# person, which Kizuna cannot tell apart: it keeps every record the longer period).
RETENTION_YEARS = 3
# Rows per INSERT statement: far below SQLite's bound-parameter limit (8 columns a row).
_INSERT_BATCH = 5000


def _text(value: str, name: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationError(f"{name} must not be empty", field=name)
    if len(text) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    return text


def record_provisions(
    session: Session,
    *,
    customer_ids: Iterable[int],
    recipient: str,
    fields: Sequence[str],
    via: str,
    purpose: str,
    actor: str,
    reference: str | None = None,
) -> int:
    """Record that ``fields`` of each customer were handed to ``recipient``; returns the number of rows written.

    One row per distinct customer, all with the same time. ``fields`` names items (``email``, ``phone`` ...),
    never values. ``actor`` is who made the hand-over (an actor label). Bulk insert in the caller's
    transaction; does not commit. The caller checks permissions: recording is part of the hand-over it made.
    """
    recipient = _text(recipient, "recipient", 200)
    via = _text(via, "via", 32)
    purpose = _text(purpose, "purpose", 64)
    provided_by = _text(actor, "actor", 320)
    if reference is not None:
        reference = _text(reference, "reference", 200)
    if isinstance(fields, str):
        # A lone string would be recorded letter by letter.
        raise ValidationError("fields must be a list of field names, not one string", field="fields")
    names = list(dict.fromkeys(_text(f, "fields", 64) for f in fields))
    if not names:
        raise ValidationError("fields must name at least one field handed over", field="fields")
    ids = list(dict.fromkeys(int(c) for c in customer_ids))
    if not ids:
        return 0
    now = utcnow()
    rows = [
        {
            "customer_id": customer_id,
            "recipient": recipient,
            "fields": names,
            "purpose": purpose,
            "provided_at": now,
            "provided_by": provided_by,
            "via": via,
            "reference": reference,
        }
        for customer_id in ids
    ]
    for start in range(0, len(rows), _INSERT_BATCH):
        # A Core insert on the table: the ORM's bulk path took half as long again (50,000 rows: 2.7 s vs 1.8 s).
        session.execute(insert(ThirdPartyProvision.__table__), rows[start : start + _INSERT_BATCH])
    from kizuna.privacy.retention import ensure_scheduled

    ensure_scheduled(session)
    return len(rows)


def list_provisions(
    session: Session,
    *,
    actor: Actor,
    params: Mapping[str, Any],
    sort: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[ThirdPartyProvision], str | None]:
    """One page of every provision record, filtered like any list (``recipient__contains=Google`` ...)."""
    require(actor, "privacy:read")
    return list_page(
        session, PROVISION_FILTERS, select(ThirdPartyProvision), params, sort=sort, cursor=cursor, limit=limit
    )


def customer_provisions(
    session: Session, *, actor: Actor, customer_id: int, limit: int = 20
) -> tuple[list[ThirdPartyProvision], int]:
    """A customer's newest provision records and how many there are in all (the 360 page's section)."""
    require(actor, "customers:read")
    where = ThirdPartyProvision.customer_id == customer_id
    rows = session.scalars(
        select(ThirdPartyProvision)
        .where(where)
        .order_by(ThirdPartyProvision.provided_at.desc(), ThirdPartyProvision.id.desc())
        .limit(limit)
    )
    total = session.scalar(select(func.count()).select_from(ThirdPartyProvision).where(where)) or 0
    return list(rows), total


def retention_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    """Records provided before this instant are past their retention (three calendar years ago)."""
    now = now or utcnow()
    try:
        return now.replace(year=now.year - RETENTION_YEARS)
    except ValueError:  # 29 February, three years on, is 28 February
        return now.replace(year=now.year - RETENTION_YEARS, day=28)


def purge_expired(session: Session, *, actor: Actor, now: dt.datetime | None = None) -> int:
    """Delete the records older than the retention period; audited; returns how many went. Does not commit."""
    require(actor, "privacy:manage")
    return purge_expired_unchecked(session, actor=actor, now=now)


def purge_expired_unchecked(session: Session, *, actor: Actor, now: dt.datetime | None = None) -> int:
    """``purge_expired`` without the permission check (the worker's daily run)."""
    cutoff = retention_cutoff(now)
    result = session.execute(
        delete(ThirdPartyProvision)
        .where(ThirdPartyProvision.provided_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    count = int(result.rowcount or 0)
    if count:
        audit.record(
            session,
            actor=actor,
            action="privacy.provisions_purged",
            entity_type="third_party_provision",
            details={"before": cutoff.isoformat(), "rows": count, "retention_years": RETENTION_YEARS},
            summary=f"purged {count} provision records older than {cutoff:%Y-%m-%d}",
        )
    return count
