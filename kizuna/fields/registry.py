"""The custom field definitions as the filter sets and the segment compiler see them, read fresh each time.

Filters and segment rules are built without a session (``FilterSet.condition``), yet a field an admin has
just added must be filterable at once in every process, without a restart. So a lookup reads the one small
``custom_fields`` row it needs on its own connection of the bound engine (the app's, or the session's a
service runs in; by default the configured database): no cache to go stale across workers, and no read
inside the caller's transaction (which on SQLite would turn a later write into a lock upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.fields.models import CustomField

_bound: Engine | None = None


@dataclass(frozen=True)
class FieldSpec:
    entity: str
    key: str
    type: str
    label: str
    choices: tuple[str, ...] = ()


def bind(engine: Engine) -> None:
    """Read definitions from ``engine`` (the app does this at start; tests run one app per backend)."""
    global _bound
    _bound = engine


def use(session: Session) -> None:
    """Read definitions from the database ``session`` works on."""
    bind(session.get_bind())  # type: ignore[arg-type]


def _engine() -> Engine:
    if _bound is not None:
        return _bound
    from kizuna.db import get_engine

    return get_engine()


def lookup(entity: str, key: str) -> FieldSpec | None:
    """The definition of ``attributes.<key>`` on ``entity``, or None."""
    with _engine().connect() as connection:
        row = connection.execute(
            select(CustomField.type, CustomField.label, CustomField.choices).where(
                CustomField.entity == entity, CustomField.key == key
            )
        ).first()
    if row is None:
        return None
    return FieldSpec(entity, key, row.type, row.label, tuple(row.choices or ()))


def all_specs(engine: Engine | None = None) -> list[FieldSpec]:
    """Every definition (the OpenAPI document lists them at request time)."""
    with (engine or _engine()).connect() as connection:
        rows = connection.execute(
            select(
                CustomField.entity, CustomField.key, CustomField.type, CustomField.label, CustomField.choices
            ).order_by(CustomField.entity, CustomField.position, CustomField.id)
        ).all()
    return [FieldSpec(r.entity, r.key, r.type, r.label, tuple(r.choices or ())) for r in rows]
