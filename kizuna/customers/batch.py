"""Changes to many customers at once (a journey's tag and attribute steps), set-based but with every side effect
``update_customer`` has: the version bump (not for tags, which live in their own table: ``update_customer`` leaves
the customer row alone for them too), one audit entry per changed customer with its before and after values,
and one ``customer.updated`` outbox message per changed customer (segments and webhooks read those). Customers
whose values are already as asked are left alone, as ``update_customer`` leaves them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, get_args

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers.models import Customer, Tag, customer_tags
from kizuna.customers.schemas import Stage
from kizuna.customers.service import tags_by_name
from kizuna.db import utcnow
from kizuna.errors import ValidationError
from kizuna.fields import service as custom_fields
from kizuna.outbox.service import emit_many

STAGES = get_args(Stage)
# Customer ids per statement (far below SQLite's bound-parameter limit).
_CHUNK = 5000


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def change_tags(
    session: Session, *, actor: Actor, customer_ids: list[int], add: list[str], remove: list[str]
) -> list[int]:
    """Add and remove tags on the active customers among ``customer_ids``; returns the ids that changed.

    A customer who already has KIZUNA_MAX_TAGS_PER_CUSTOMER tags gets no new one (the others still do).
    """
    require(actor, "customers:write")
    ids = sorted(set(customer_ids))
    if not ids or not (add or remove):
        return []
    adding = [t for t in tags_by_name(session, list(add)) if t.name not in set(remove)]
    session.flush()
    removing = list(session.scalars(select(Tag).where(Tag.name.in_(sorted(set(remove)))))) if remove else []
    before: dict[int, list[str]] = {}
    for chunk in _chunks(ids):
        active = select(Customer.id).where(Customer.id.in_(chunk), Customer.status == "active")
        before.update({i: [] for i in session.scalars(active)})
        rows = session.execute(
            select(customer_tags.c.customer_id, Tag.name)
            .join(Tag, Tag.id == customer_tags.c.tag_id)
            .where(customer_tags.c.customer_id.in_(chunk))
        )
        for customer_id, name in rows:
            if customer_id in before:
                before[customer_id].append(name)
    limit = get_settings().max_tags_per_customer
    after: dict[int, list[str]] = {}
    new_links: list[dict[str, int]] = []
    gone = {t.name for t in removing}
    for customer_id, names in before.items():
        kept = [n for n in names if n not in gone]
        for tag in adding:
            if tag.name not in kept and len(kept) < limit:
                kept.append(tag.name)
                new_links.append({"customer_id": customer_id, "tag_id": tag.id})
        if sorted(kept) != sorted(names):
            after[customer_id] = kept
    changed = sorted(after)
    if not changed:
        return []
    if removing:
        for chunk in _chunks(changed):
            session.execute(
                delete(customer_tags).where(
                    customer_tags.c.customer_id.in_(chunk), customer_tags.c.tag_id.in_([t.id for t in removing])
                )
            )
    if new_links:
        session.execute(customer_tags.insert(), new_links)
    diffs = {i: {"tags": [sorted(before[i]), sorted(after[i])]} for i in changed}
    # As update_customer: tags live in their own table, so the customer row (and its version) is not touched.
    _record(session, actor, changed, diffs)
    return changed


def set_attributes(session: Session, *, actor: Actor, customer_ids: list[int], values: dict[str, Any]) -> list[int]:
    """Set custom attributes (``name`` or ``attributes.name``) and ``lifecycle_stage`` on the active customers
    among ``customer_ids``; returns the ids that changed."""
    require(actor, "customers:write")
    ids = sorted(set(customer_ids))
    columns = {k: v for k, v in values.items() if k == "lifecycle_stage"}
    custom = {k.removeprefix("attributes."): v for k, v in values.items() if k != "lifecycle_stage"}
    # A custom field's value is stored typed, as by every other write (a journey step sets "12" on a number).
    for field in custom_fields.definitions(session, "customer"):
        if custom.get(field.key) not in (None, "", []):
            custom[field.key] = custom_fields.typed_value(session, field, custom[field.key])
    if "lifecycle_stage" in columns and columns["lifecycle_stage"] not in STAGES:
        raise ValidationError(
            f"lifecycle_stage must be one of {', '.join(STAGES)}", field="lifecycle_stage", key="error.literal_error"
        )
    diffs: dict[int, dict[str, list[Any]]] = {}
    updates: dict[tuple[Any, ...], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Customer.id, Customer.attributes, Customer.lifecycle_stage).where(
                Customer.id.in_(chunk), Customer.status == "active"
            )
        )
        for customer_id, attributes, stage in rows:
            old = dict(attributes or {})
            new = {**old, **custom}
            diff: dict[str, list[Any]] = {}
            if new != old:
                diff["attributes"] = [old, new]
            if "lifecycle_stage" in columns and stage != columns["lifecycle_stage"]:
                diff["lifecycle_stage"] = [stage, columns["lifecycle_stage"]]
            if diff:
                diffs[customer_id] = diff
                updates[("lifecycle_stage" in diff,)].append((customer_id, new))
    if not diffs:
        return []
    table = Customer.__table__
    for (stage_changes,), items in updates.items():
        params = [{"b_id": customer_id, "b_attributes": new} for customer_id, new in items]
        statement = update(table).where(table.c.id == bindparam("b_id")).values(attributes=bindparam("b_attributes"))
        if stage_changes:
            statement = statement.values(lifecycle_stage=columns["lifecycle_stage"])
        session.execute(statement, params)
    changed = sorted(diffs)
    _touch(session, actor, changed, diffs)
    return changed


def _touch(session: Session, actor: Actor, changed: list[int], diffs: dict[int, dict[str, list[Any]]]) -> None:
    """The version bump, audit entries and outbox messages of ``update_customer``, for many customers."""
    now = utcnow()
    table = Customer.__table__
    for chunk in _chunks(changed):
        session.execute(update(table).where(table.c.id.in_(chunk)).values(version=table.c.version + 1, updated_at=now))
    _record(session, actor, changed, diffs)


def _record(session: Session, actor: Actor, changed: list[int], diffs: dict[int, dict[str, list[Any]]]) -> None:
    """One audit entry and one ``customer.updated`` message per changed customer."""
    audit.record_many(
        session,
        actor=actor,
        action="customer.update",
        entity_type="customer",
        entries=[(i, i, diffs[i]) for i in changed],
    )
    emit_many(
        session,
        "customer.updated",
        [({"customer_id": i, "fields": sorted(diffs[i])}, i, None) for i in changed],
        origin=actor.origin,
    )
