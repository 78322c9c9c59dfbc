"""Merging two records of the same person into one, keeping everything both had."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

import kizuna.models  # noqa: F401  (every table on the metadata, so MOVED below sees them all)
from kizuna.auth import audit
from kizuna.auth.permissions import Actor
from kizuna.customers import duplicates, identities
from kizuna.customers.models import Customer, CustomerMerge, customer_tags
from kizuna.customers.service import SNAPSHOT_FIELDS, _refresh_names, get_customer, snapshot
from kizuna.db import Base, check_version
from kizuna.errors import ValidationError
from kizuna.outbox.service import emit

# Tables with a ``customer_id`` that a merge does not move to the survivor, each with its reason. Every other
# such table moves (MOVED is read from the metadata, so a new domain table moves without being listed), and
# tests/customers/test_merge_tables.py fails when a table is in neither.
NOT_MOVED = {
    "customer_tags": "moved as a set in merge_customers: a tag both customers had must not be inserted twice",
    "audit_log": "says what was done to whom at the time; the merged id resolves to the survivor",
    "outbox": "messages already emitted describe the past; their payloads name the ids of the time",
    "customer_import_marks": "one row per customer (its primary key); the survivor keeps its own import marks",
    "customer_duplicates": "pairs are decided, not moved: the pair of the two closes as merged (duplicates.py)",
    "segment_memberships": "a stay is the history of the record that was in the segment: the merged record "
    "leaves its segments at their next refresh (segment.exited) and the survivor enters the ones it now matches",
    "customer_metrics": "computed from the orders, one row per customer: the refresh a merge triggers recomputes "
    "the survivor's row and removes the merged record's (moving it would collide with the survivor's own)",
}
# References to customers under another name, and what a merge does with them (merge_customers, below).
OTHER_REFERENCES = {
    "customers.merged_into_id": "earlier merges into the merged record are pointed at the survivor",
    "customer_merges.survivor_id": "earlier merges into the merged record are pointed at the survivor",
    "customer_merges.merged_id": "stays: it is the record of which id was folded in",
    "customer_duplicates.other_customer_id": "the merged record's open pairs pass to the survivor (duplicates.py)",
}
MOVED: tuple[Table, ...] = tuple(
    table for table in Base.metadata.sorted_tables if "customer_id" in table.c and table.name not in NOT_MOVED
)

# The values a merge lets a person pick from either record, as groups that only make sense whole (a name is
# its family and given name together, an address all of its parts). Every other snapshot field is a group of
# its own, derived so that a column added later can be picked too; ``attributes`` are merged key by key.
_WHOLE = {
    "name": ("family_name", "given_name"),
    "name_kana": ("family_name_kana", "given_name_kana"),
    "address": ("postal_code", "prefecture", "city", "address_line", "country"),
}
KEEP_GROUPS: dict[str, tuple[str, ...]] = {
    **_WHOLE,
    **{
        name: (name,)
        for name in SNAPSHOT_FIELDS
        if name != "attributes" and not any(name in fields for fields in _WHOLE.values())
    },
}
Side = Literal["survivor", "merged"]


def _check_keep(keep: Mapping[str, str]) -> None:
    for group, side in keep.items():
        if group not in KEEP_GROUPS:
            raise ValidationError(
                f"'{group}' cannot be picked in a merge; one of {', '.join(KEEP_GROUPS)}", field="keep"
            )
        if side not in ("survivor", "merged"):
            raise ValidationError(f"keep.{group} is '{side}'; use 'survivor' or 'merged'", field="keep")


def merge_customers(
    session: Session,
    *,
    actor: Actor,
    survivor_id: int,
    merged_id: int,
    reason: str,
    keep: Mapping[str, Side] | None = None,
    expected_versions: Mapping[int, int] | None = None,
) -> Customer:
    """Fold ``merged_id`` into ``survivor_id``.

    The survivor keeps its values and gains the ones it lacked; every identity, order, event, consent, note
    and tag moves over; the merged row stays (status ``merged``) so its id keeps resolving to the survivor.
    ``keep`` picks, per group of ``KEEP_GROUPS``, whose values the survivor ends with (``merged``: the merged
    record's, even where they are empty; ``survivor``: its own, not filled from the other). With
    ``expected_versions`` (customer id -> version read) a record changed since it was read refuses the merge.
    Callers check permissions: an import merges as part of ``data:import``, the API asks ``customers:merge``.
    """
    keep = dict(keep or {})
    _check_keep(keep)
    survivor = get_customer(session, survivor_id)
    merged = get_customer(session, merged_id)
    if survivor.id == merged.id:
        raise ValidationError("a customer cannot be merged into itself", field="merge_id")
    for customer in (survivor, merged):
        if expected_versions and customer.id in expected_versions:
            check_version(customer.version, body=expected_versions[customer.id])
    before = snapshot(merged)
    identities.drop_shared(session, keep=survivor.id, drop=merged.id)
    # An NPS link is counted once: two answers under one send key become the newer one before the rows move.
    from kizuna.surveys.service import before_merge as surveys_before_merge

    surveys_before_merge(session, survivor_id=survivor.id, merged_id=merged.id)
    for table in MOVED:
        session.execute(update(table).where(table.c.customer_id == merged.id).values(customer_id=survivor.id))
    tag_ids = set(session.scalars(select(customer_tags.c.tag_id).where(customer_tags.c.customer_id == merged.id)))
    tag_ids -= set(session.scalars(select(customer_tags.c.tag_id).where(customer_tags.c.customer_id == survivor.id)))
    if tag_ids:
        session.execute(customer_tags.insert(), [{"customer_id": survivor.id, "tag_id": t} for t in tag_ids])
    session.execute(customer_tags.delete().where(customer_tags.c.customer_id == merged.id))
    # Earlier merges into the merged record now point straight at the survivor.
    session.execute(
        update(Customer)
        .where(Customer.merged_into_id == merged.id)
        .values(merged_into_id=survivor.id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CustomerMerge)
        .where(CustomerMerge.survivor_id == merged.id)
        .values(survivor_id=survivor.id)
        .execution_options(synchronize_session=False)
    )

    duplicates.after_merge(session, actor=actor, survivor_id=survivor.id, merged_id=merged.id)
    filled = []
    kept: dict[str, dict[str, object]] = {}
    for group, side in keep.items():
        fields = KEEP_GROUPS[group]
        if side == "merged":
            for name in fields:
                setattr(survivor, name, before[name])
        kept[group] = {"from": side, **{name: audit._plain(getattr(survivor, name)) for name in fields}}
    untouched = {name for group in keep for name in KEEP_GROUPS[group]}
    for name, value in before.items():
        if name in untouched:
            continue
        if name == "attributes":
            extra = {k: v for k, v in (value or {}).items() if k not in (survivor.attributes or {})}
            if extra:
                survivor.attributes = {**extra, **(survivor.attributes or {})}
                filled.append(name)
        elif getattr(survivor, name) in (None, "") and value not in (None, ""):
            setattr(survivor, name, value)
            filled.append(name)
    _refresh_names(survivor)
    merged.status = "merged"
    merged.merged_into_id = survivor.id
    session.add(
        CustomerMerge(
            survivor_id=survivor.id,
            merged_id=merged.id,
            reason=reason,
            snapshot={k: audit._plain(v) for k, v in before.items()},
            actor=actor.label,
        )
    )
    session.flush()
    session.expire(survivor, ["tags"])
    details = {"survivor_id": survivor.id, "merged_id": merged.id, "reason": reason, "filled": filled}
    audit.record(
        session,
        actor=actor,
        action="customer.merge",
        entity_type="customer",
        entity_id=survivor.id,
        customer_id=survivor.id,
        # The values a person picked are evidence of the decision; the outbox message (read by webhooks) only
        # names the groups, not the personal data in them.
        details={**details, "kept": kept} if kept else details,
        summary=f"merged {merged.id} into {survivor.id}",
    )
    if kept:
        details["kept"] = {group: value["from"] for group, value in kept.items()}
    emit(session, "customer.merged", details, customer_id=survivor.id, origin=actor.origin)
    return survivor


def merged_ids(session: Session, customer_id: int) -> list[int]:
    """Ids that were merged into this customer (and still resolve to it)."""
    return list(
        session.scalars(
            select(CustomerMerge.merged_id).where(CustomerMerge.survivor_id == customer_id).order_by(CustomerMerge.id)
        )
    )
