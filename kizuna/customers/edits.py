"""What editing customers needs beyond one update: who changed a record since a form was read, the users a
customer can be assigned to, and bulk changes on a selection (each customer through the one update service,
so every change has its audit entry and its outbox message)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth.models import AuditEntry, User
from kizuna.auth.permissions import Actor, require
from kizuna.customers import service
from kizuna.customers.models import Company, Customer
from kizuna.customers.schemas import CustomerUpdate
from kizuna.errors import ValidationError

# A selection is one page of the list at most; a bigger change is an import or a segment's action.
MAX_SELECTION = 500


@dataclass(frozen=True)
class Change:
    """One change made to a customer by someone: who, when, and which fields."""

    actor: str
    at: dt.datetime
    fields: list[str]


def changes_since(session: Session, customer_id: int, version: int) -> list[Change]:
    """The updates made to the customer after the user read it at ``version``, newest first.

    Each update raises the version by one, so the newest ``current - version`` update entries are the ones the
    user has not seen (at most 10 are shown).
    """
    current = session.scalar(select(Customer.version).where(Customer.id == customer_id))
    missed = max(0, min((current or version) - version, 10))
    if not missed:
        return []
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.customer_id == customer_id, AuditEntry.action.in_(("customer.update", "customer.merge")))
        .order_by(AuditEntry.id.desc())
        .limit(missed)
    )
    return [Change(actor=r.actor, at=r.at, fields=sorted((r.details or {}).keys())) for r in rows]


def assignable_users(session: Session) -> list[tuple[int, str]]:
    """Active users a customer can be assigned to, as (id, name or e-mail), by name."""
    rows = session.execute(select(User.id, User.name, User.email).where(User.is_active.is_(True)))
    return sorted(((uid, name or email) for uid, name, email in rows), key=lambda pair: pair[1].casefold())


def company_choices(session: Session, limit: int = 1000) -> list[tuple[int, str]]:
    """Companies a form offers, as (id, name), by name; a team with more sets the company in the API or an import."""
    return [tuple(row) for row in session.execute(select(Company.id, Company.name).order_by(Company.name).limit(limit))]


def split_tags(text: str) -> list[str]:
    """Tags typed into one field: separated by commas (ASCII, Japanese 、 or full-width ，) or new lines."""
    for separator in ("、", "，", "\n"):
        text = text.replace(separator, ",")
    seen: dict[str, None] = {}
    for tag in (part.strip() for part in text.split(",")):
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def bulk_change(
    session: Session,
    *,
    actor: Actor,
    customer_ids: list[int],
    add_tags: list[str] | None = None,
    remove_tags: list[str] | None = None,
    owner_id: int | None = None,
    clear_owner: bool = False,
) -> int:
    """Apply one change to each selected customer; returns how many changed.

    All or nothing: the caller commits once, so a refusal for one customer leaves every other untouched.
    """
    require(actor, "customers:write")
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        raise ValidationError("select at least one customer", field="ids", key="error.no_selection")
    if len(ids) > MAX_SELECTION:
        raise ValidationError(
            f"{len(ids)} customers selected; at most {MAX_SELECTION} at once",
            field="ids",
            key="error.selection_too_big",
            params={"limit": MAX_SELECTION},
        )
    if not (add_tags or remove_tags or owner_id is not None or clear_owner):
        raise ValidationError("choose what to change", field="action", key="error.no_bulk_action")
    if owner_id is not None and session.get(User, owner_id) is None:
        raise ValidationError(
            f"no user {owner_id}", field="owner_id", key="error.not_found_ref", params={"value": owner_id}
        )
    changed = 0
    for customer_id in ids:
        customer = service.get_customer(session, customer_id)
        tags = [t.name for t in customer.tags]
        new_tags = [t for t in tags if t not in set(remove_tags or [])]
        new_tags += [t for t in add_tags or [] if t not in new_tags]
        fields: dict[str, object] = {}
        if new_tags != tags:
            fields["tags"] = new_tags
        if clear_owner and customer.owner_id is not None:
            fields["owner_id"] = None
        elif owner_id is not None and customer.owner_id != owner_id:
            fields["owner_id"] = owner_id
        if not fields:
            continue
        service.update_customer(
            session,
            actor=actor,
            customer_id=customer.id,
            data=CustomerUpdate.model_validate(fields),
            expected_version=None,
        )
        changed += 1
    return changed
