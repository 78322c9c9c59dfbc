"""The audit log: every write and every export of personal data, in the same transaction as the act."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object | None = None,
    customer_id: int | None = None,
    details: dict[str, Any] | None = None,
    summary: str = "",
) -> AuditEntry:
    entry = AuditEntry(
        actor_user_id=actor.user_id,
        actor=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        customer_id=customer_id,
        details=details,
        summary=summary,
    )
    session.add(entry)
    return entry


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """Field -> [old, new] for the fields that differ, JSON-friendly."""
    out: dict[str, list[Any]] = {}
    for key, new in after.items():
        old = before.get(key)
        if old != new:
            out[key] = [_plain(old), _plain(new)]
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def apply_changes(
    session: Session,
    obj: Any,
    values: dict[str, Any],
    *,
    actor: Actor,
    entity_type: str,
    customer_id: int | None = None,
) -> dict[str, list[Any]]:
    """Set ``values`` on ``obj`` and audit what actually changed as ``<entity_type>.update``; returns the diff.

    Nothing is audited (and the version is not bumped) when every value is already as given.
    """
    before = {k: getattr(obj, k) for k in values}
    for name, value in values.items():
        setattr(obj, name, value)
    diff = changes(before, {k: getattr(obj, k) for k in values})
    if diff:
        session.flush()
        record(
            session,
            actor=actor,
            action=f"{entity_type}.update",
            entity_type=entity_type,
            entity_id=obj.id,
            customer_id=customer_id,
            details=diff,
        )
    return diff


def record_many(
    session: Session,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entries: list[tuple[object, int | None, dict[str, Any] | None]],
    summary: str = "",
) -> None:
    """``record`` for a bulk path: one row per (entity_id, customer_id, details), written with one executemany."""
    if not entries:
        return
    from kizuna.db import utcnow
    from kizuna.imports.bulk import insert_rows  # the bulk writer lives with the importers

    at = utcnow()
    insert_rows(
        session,
        AuditEntry.__table__,
        [
            {
                "at": at,
                "actor_user_id": actor.user_id,
                "actor": actor.label,
                "action": action,
                "entity_type": entity_type,
                "entity_id": None if entity_id is None else str(entity_id),
                "customer_id": customer_id,
                "details": {k: [_plain(x) for x in v] for k, v in details.items()} if details else details,
                "summary": summary,
            }
            for entity_id, customer_id, details in entries
        ],
    )


def last_change(session: Session, *, entity_type: str, entity_id: object) -> AuditEntry | None:
    """The newest ``<entity_type>.update`` entry of one record: who changed it last, when and which fields (a
    stale form says so)."""
    from sqlalchemy import select

    return session.scalar(
        select(AuditEntry)
        .where(AuditEntry.entity_type == entity_type, AuditEntry.entity_id == str(entity_id))
        .where(AuditEntry.action == f"{entity_type}.update")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
