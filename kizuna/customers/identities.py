"""Identities: the ways to recognise a customer (e-mails, phones, LINE user ids, anonymous ids, source-system ids).

The ``customer_identities`` rows are the source of truth; the customer's ``email``, ``phone`` and
``external_id`` columns mirror one *primary* value of their kind for lists, search and sending. Every writer
(the API, the UI, imports, merges, the 360 page) goes through this module, so adding a kind means adding one
``IdentityKind`` here.

Each kind is **unique** (a match means the same person: e-mail, LINE user id, anonymous id,
``external_id:<source>``) or a **hint** (phone: a family or an office shares one, so a match only proposes a
duplicate pair for a person to review). No identity change ever merges two customers: a unique value that
belongs to someone else is refused with the owner named, and merging is a decision (``merge.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers.models import HINT_KINDS, Customer, CustomerIdentity, in_index_of
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.normalize import normalize_email, normalize_phone, normalize_text
from kizuna.outbox.service import emit


@dataclass(frozen=True)
class IdentityKind:
    name: str
    unique: bool
    normalise: Callable[[str], str | None]
    # The customer column that mirrors this kind's primary value, if any.
    column: str | None = None


def _email(value: str) -> str | None:
    return normalize_email(value, field="value")


def _phone(value: str) -> str | None:
    return normalize_phone(value, region=get_settings().default_region, field="value")


def _token(pattern: str, what: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)

    def check(value: str) -> str | None:
        text = normalize_text(value)
        if text is None:
            return None
        if not compiled.fullmatch(text):
            raise ValidationError(
                f"{text[:40]!r} is not a valid {what}",
                field="value",
                key="error.identity_invalid",
                params={"value": text[:40]},
            )
        return text

    return check


_external = _token(r"[^\s\x00-\x1f]{1,128}", "external id (1-128 characters, no spaces)")

KINDS: dict[str, IdentityKind] = {
    k.name: k
    for k in (
        IdentityKind("email", unique="email" not in HINT_KINDS, normalise=_email, column="email"),
        IdentityKind("phone", unique="phone" not in HINT_KINDS, normalise=_phone, column="phone"),
        IdentityKind("external_id", unique=True, normalise=_external, column="external_id"),
        IdentityKind("line_user_id", unique=True, normalise=_token(r"U[0-9a-f]{32}", "LINE user id (U + 32 hex)")),
        IdentityKind("anonymous_id", unique=True, normalise=_token(r"[!-~]{1,200}", "anonymous id")),
    )
}
# Ids in other systems: ``external_id:<source>`` (``external_id:shopify``, ``external_id:pos``) are unique per source.
SOURCE_PREFIX = "external_id:"
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")
# Kinds mirrored on customer columns, in the order imports and forms read them.
MIRRORED = tuple(k.name for k in KINDS.values() if k.column)


# Column names an import reads as identities of kinds that have no customer column (besides the kind names
# themselves and ``external_id:<source>``). Mirrored kinds come through the importer's own aliases.
HEADERS = {
    "line user id": "line_user_id",
    "lineユーザーid": "line_user_id",
    "line id": "line_user_id",
    "anonymous id": "anonymous_id",
}


def kind_for_header(header: str) -> str | None:
    """The identity kind an import column holds (``line_user_id``, ``external_id:shopify`` ...), if it is one."""
    name = " ".join(header.strip().casefold().split())
    if name in HEADERS:
        return HEADERS[name]
    name = name.replace(" ", "_")
    if name in KINDS and KINDS[name].column is None:
        return name
    if name.startswith(SOURCE_PREFIX) and _SOURCE.fullmatch(name[len(SOURCE_PREFIX) :]):
        return name
    return None


def kind(name: str) -> IdentityKind:
    """The kind named ``name``; ``external_id:<source>`` is a unique kind per source system."""
    if name in KINDS:
        return KINDS[name]
    if name.startswith(SOURCE_PREFIX) and _SOURCE.fullmatch(name[len(SOURCE_PREFIX) :]):
        return IdentityKind(name, unique=True, normalise=_external)
    known = ", ".join([*KINDS, f"{SOURCE_PREFIX}<source>"])
    raise ValidationError(f"unknown identity kind {name[:40]!r}; one of {known}", field="kind")


def normalise(kind_name: str, value: object) -> str:
    """The stored form of ``value`` for ``kind_name``; a clear error when it is not one."""
    if not isinstance(value, str):
        raise ValidationError("an identity value is text", field="value")
    stored = kind(kind_name).normalise(value)
    if not stored:
        raise ValidationError(f"an empty {kind_name} is not an identity", field="value", key="error.identity_empty")
    return stored


def owners(session: Session, kind_name: str, value: str) -> list[int]:
    """Customers holding this identity: at most one for a unique kind, any number for a hint."""
    query = select(CustomerIdentity.customer_id).where(
        CustomerIdentity.kind == kind_name,
        CustomerIdentity.value == value,
        in_index_of(kind_name, CustomerIdentity.kind),
    )
    return sorted(set(session.scalars(query)))


def owner(session: Session, kind_name: str, value: str) -> int | None:
    """The customer a unique identity belongs to (None when nobody holds it)."""
    found = owners(session, kind_name, value)
    return found[0] if found else None


def holders(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], set[int]]:
    """Every customer holding each of ``keys`` ((kind, value) pairs), one IN query per kind and 5,000 values."""
    found: dict[tuple[str, str], set[int]] = {}
    by_kind: dict[str, list[str]] = {}
    for kind_name, value in keys:
        by_kind.setdefault(kind_name, []).append(value)
    for kind_name, values in by_kind.items():
        for start in range(0, len(values), 5000):
            query = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == kind_name,
                CustomerIdentity.value.in_(values[start : start + 5000]),
                in_index_of(kind_name, CustomerIdentity.kind),
            )
            for value, customer_id in session.execute(query):
                found.setdefault((kind_name, value), set()).add(customer_id)
    return found


def list_identities(session: Session, customer_id: int) -> list[CustomerIdentity]:
    return list(
        session.scalars(
            select(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id).order_by(CustomerIdentity.id)
        )
    )


def is_primary(customer: Customer, identity: CustomerIdentity) -> bool:
    column = KINDS[identity.kind].column if identity.kind in KINDS else None
    return column is not None and getattr(customer, column) == identity.value


def _attach(
    session: Session, customer: Customer, kind_name: str, value: str
) -> tuple[CustomerIdentity | None, list[int]]:
    """Give ``customer`` this identity; returns (the new row or None if it had it, other holders of a hint).

    A unique identity held by someone else is refused (409) with the holder named: two records of one
    person are merged by a person, never as a side effect of adding an identity.
    """
    held_by = owners(session, kind_name, value)
    if customer.id in held_by:
        return None, []
    others = [c for c in held_by if c != customer.id]
    if others and kind(kind_name).unique:
        raise Conflict(
            f"{kind_name} {value} already belongs to customer {others[0]}; merge the two customers if they are one",
            field=kind_name if kind_name in MIRRORED else "value",
            key="error.identity_taken",
            params={"value": value, "customer_id": others[0]},
        )
    row = CustomerIdentity(customer_id=customer.id, kind=kind_name, value=value)
    session.add(row)
    return row, others


def sync_primary(session: Session, customer: Customer, before: dict[str, object] | None = None) -> list[int]:
    """After a create or update: the mirrored columns' values are identities of the customer.

    A changed primary value replaces the old one's row. Returns the other customers that share a hint value
    (a phone), for the caller to propose as duplicates.
    """
    sharing: list[int] = []
    for name in MIRRORED:
        value = getattr(customer, name)
        old = (before or {}).get(name)
        if before is not None and value == old:
            continue
        if value is not None:
            _, others = _attach(session, customer, name, value)
            sharing.extend(others)
        if old is not None and old != value:
            session.execute(
                delete(CustomerIdentity).where(
                    CustomerIdentity.customer_id == customer.id,
                    CustomerIdentity.kind == name,
                    CustomerIdentity.value == old,
                )
            )
    return sorted(set(sharing))


def add_identity(
    session: Session, *, actor: Actor, customer: Customer, kind_name: str, value: object, primary: bool = False
) -> tuple[CustomerIdentity, list[int]]:
    """Add an identity to ``customer`` (API, UI, imports of new kinds); ``primary`` also sets the mirrored column.

    Returns the identity row and the other customers sharing it when it is a hint.
    """
    require(actor, "customers:write")
    stored = normalise(kind_name, value)
    row, others = _attach(session, customer, kind_name, stored)
    if row is None:
        row = session.scalar(
            select(CustomerIdentity).where(
                CustomerIdentity.customer_id == customer.id,
                CustomerIdentity.kind == kind_name,
                CustomerIdentity.value == stored,
            )
        )
        if not primary:
            raise Conflict(f"customer {customer.id} already has {kind_name} {stored}", field="value")
    column = KINDS[kind_name].column if kind_name in KINDS else None
    if primary or (column and getattr(customer, column) is None):
        if column is None:
            raise ValidationError(f"{kind_name} has no primary value on the customer", field="primary")
        setattr(customer, column, stored)
    session.flush()
    _announce(session, actor, customer, "identity.added", kind_name)
    audit.record(
        session,
        actor=actor,
        action="identity.add",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        details={"kind": kind_name, "value": stored},
    )
    return row, others


def remove_identity(session: Session, *, actor: Actor, customer: Customer, identity_id: int) -> None:
    """Remove one identity; if it was the primary of its kind, another of that kind (the oldest) takes over."""
    require(actor, "customers:write")
    row = session.get(CustomerIdentity, identity_id)
    if row is None or row.customer_id != customer.id:
        raise NotFound(f"customer {customer.id} has no identity {identity_id}")
    was_primary = is_primary(customer, row)
    session.delete(row)
    session.flush()
    if was_primary:
        column = KINDS[row.kind].column
        successor = session.scalar(
            select(CustomerIdentity.value)
            .where(CustomerIdentity.customer_id == customer.id, CustomerIdentity.kind == row.kind)
            .order_by(CustomerIdentity.id)
            .limit(1)
        )
        setattr(customer, column, successor)
    _announce(session, actor, customer, "identity.removed", row.kind)
    audit.record(
        session,
        actor=actor,
        action="identity.remove",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        details={"kind": row.kind, "value": row.value},
    )


def _announce(session: Session, actor: Actor, customer: Customer, topic: str, kind_name: str) -> None:
    # The value is personal data and stays in its table; subscribers read it by customer when they need it.
    emit(
        session,
        topic,
        {"customer_id": customer.id, "kind": kind_name},
        customer_id=customer.id,
        origin=actor.origin,
    )


def drop_shared(session: Session, *, keep: int, drop: int) -> None:
    """Before a merge: ``drop``'s identities that ``keep`` also holds (a shared phone) go, so none is held twice."""
    held = select(CustomerIdentity.kind, CustomerIdentity.value).where(CustomerIdentity.customer_id == keep)
    session.execute(
        delete(CustomerIdentity)
        .where(CustomerIdentity.customer_id == drop, tuple_(CustomerIdentity.kind, CustomerIdentity.value).in_(held))
        .execution_options(synchronize_session=False)
    )


def keys_of(values: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Deduplicated (kind, value) keys, in order."""
    return list(dict.fromkeys(values))
