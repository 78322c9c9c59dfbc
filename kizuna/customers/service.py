"""Customer actions: create, update, delete, identities, tags, consents, notes. Merge lives in merge.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers import consent, duplicates, identities
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Company, Consent, Customer, CustomerIdentity, Note, Tag, customer_tags
from kizuna.customers.schemas import (
    CompanyCreate,
    CompanyUpdate,
    ConsentCreate,
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    NoteCreate,
)
from kizuna.db import check_version
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.normalize import full_name
from kizuna.outbox.service import emit

# Customer columns that audit diffs and merges leave out, each with its reason. Every other column is the
# person's data: a diff shows it and a merge carries it over, including columns added later (derived below,
# and tests/customers/test_snapshot.py fails if this list names a column that no longer exists).
SNAPSHOT_EXCLUDED = {
    "id": "the row itself, not a value of the person",
    "full_name": "derived from family_name and given_name, recomputed after every change",
    "full_name_kana": "derived from the kana names, recomputed after every change",
    "status": "merge bookkeeping: set by the merge itself and kept in its own record",
    "merged_into_id": "merge bookkeeping: set by the merge itself and kept in its own record",
    "created_at": "row bookkeeping, not a value anyone edits",
    "updated_at": "row bookkeeping, changes on every write",
    "version": "row bookkeeping, changes on every write",
}


def snapshot_fields(table: Table) -> tuple[str, ...]:
    """The names a snapshot holds: the table's columns, in order, minus ``SNAPSHOT_EXCLUDED``."""
    return tuple(column.key for column in table.columns if column.key not in SNAPSHOT_EXCLUDED)


# Column keys are the model's attribute names (no column of Customer is mapped under another name).
SNAPSHOT_FIELDS = snapshot_fields(Customer.__table__)


def snapshot(customer: Customer) -> dict[str, Any]:
    """The customer's own values (every column but ``SNAPSHOT_EXCLUDED``), for audit diffs and merges."""
    return {name: getattr(customer, name) for name in SNAPSHOT_FIELDS}


_customers = Customer.__table__.c
# Plain table columns (not ORM attributes): the hot reads below skip the ORM's compile and load steps.
_RESOLVE_QUERY = select(_customers.status, _customers.merged_into_id).where(_customers.id == bindparam("customer_id"))


def resolve_id(session: Session, customer_id: int) -> int:
    """Follow merges: the id of the customer that ``customer_id`` now lives in."""
    seen: set[int] = set()
    current = customer_id
    while True:
        row = session.execute(_RESOLVE_QUERY, {"customer_id": current}).first()
        if row is None:
            raise NotFound(f"customer {customer_id} not found")
        if row.merged_into_id is None or current in seen:
            return current
        seen.add(current)
        current = row.merged_into_id


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, resolve_id(session, customer_id))
    assert customer is not None
    return customer


_tags = Tag.__table__.c
# The customer row and its tag names in one statement (one row per tag, at least one row); built once.
_READ_QUERY = (
    select(*[c for c in _customers if c.name in CustomerRead.model_fields], _tags.name.label("tag_name"))
    .select_from(Customer.__table__)
    .outerjoin(customer_tags, customer_tags.c.customer_id == _customers.id)
    .outerjoin(Tag.__table__, _tags.id == customer_tags.c.tag_id)
    .where(_customers.id == bindparam("customer_id"))
    .order_by(_tags.name)
)


def read_customer(session: Session, customer_id: int) -> CustomerRead:
    """``get_customer`` as the API shows it, read with one query and no ORM objects (the hot read path)."""
    rows = session.execute(_READ_QUERY, {"customer_id": customer_id}).all()
    if rows and rows[0].merged_into_id is not None:
        rows = session.execute(_READ_QUERY, {"customer_id": resolve_id(session, customer_id)}).all()
    if not rows:
        raise NotFound(f"customer {customer_id} not found")
    values = dict(rows[0]._mapping)
    del values["tag_name"]
    values["tags"] = [row.tag_name for row in rows if row.tag_name is not None]
    return CustomerRead.model_validate(values)


def _check_references(session: Session, data: CustomerCreate | CustomerUpdate | CompanyCreate) -> None:
    from kizuna.auth.models import User

    company_id = getattr(data, "company_id", None)
    if company_id is not None and session.get(Company, company_id) is None:
        raise ValidationError(f"company {company_id} does not exist", field="company_id")
    if data.owner_id is not None and session.get(User, data.owner_id) is None:
        raise ValidationError(f"user {data.owner_id} does not exist", field="owner_id")


def _refresh_names(customer: Customer) -> None:
    customer.full_name = full_name(customer.family_name, customer.given_name)
    kana = full_name(customer.family_name_kana, customer.given_name_kana)
    customer.full_name_kana = kana or None


def tag_names(session: Session) -> list[str]:
    """Every tag's name, in order (the choices of the list's tag filter)."""
    return list(session.scalars(select(Tag.name).order_by(Tag.name)))


TAG_SUGGESTIONS = 20


def tag_suggestions(session: Session, typed: str = "", *, limit: int = TAG_SUGGESTIONS) -> list[str]:
    """A few tag names for the list's tag filter: the first ones by name, or those starting with what was typed.

    The filter is a search box, not a list of every tag: a page must not grow with the number of tags, and the
    query reads only the tags table (never counts taggings), which the tag limits keep small.
    """
    query = select(Tag.name).order_by(Tag.name).limit(limit)
    if typed:
        query = query.where(Tag.name.startswith(typed, autoescape=True))
    return list(session.scalars(query))


def tags_by_name(session: Session, names: list[str], *, max_new: int | None = None) -> list[Tag]:
    """The tags named, creating the missing ones; at most ``max_new`` new ones (tags are shared by all)."""
    wanted = sorted({n for n in names if n})
    if not wanted:
        return []
    found = {t.name: t for t in session.scalars(select(Tag).where(Tag.name.in_(wanted)))}
    new = len(wanted) - len(found)
    if max_new is not None and new > max_new:
        raise ValidationError(f"{new} new tags at once; at most {max_new} may be created by one request", field="tags")
    for name in wanted:
        if name not in found:
            if len(name) > 100:
                raise ValidationError(f"tag '{name[:20]}...' is longer than 100 characters", field="tags")
            found[name] = Tag(name=name)
            session.add(found[name])
    return [found[n] for n in wanted]


def create_customer(session: Session, *, actor: Actor, data: CustomerCreate) -> Customer:
    require(actor, "customers:write")
    _check_references(session, data)
    settings = get_settings()
    values = data.model_dump(exclude={"tags"}, exclude_none=True)
    customer = Customer(
        **{"timezone": settings.default_timezone, "locale": settings.default_locale, "attributes": {}, **values}
    )
    if data.tags:
        customer.tags = tags_by_name(session, data.tags, max_new=get_settings().max_new_tags_per_request)
    _refresh_names(customer)
    session.add(customer)
    session.flush()
    sharing = identities.sync_primary(session, customer)
    duplicates.propose_all(session, customer.id, sharing, "same phone")
    audit.record(
        session,
        actor=actor,
        action="customer.create",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        summary=customer.full_name or customer.email or "",
    )
    emit(session, "customer.created", {"customer_id": customer.id}, customer_id=customer.id, origin=actor.origin)
    return customer


def update_customer(
    session: Session, *, actor: Actor, customer_id: int, data: CustomerUpdate, expected_version: int | None
) -> Customer:
    require(actor, "customers:write")
    customer = get_customer(session, customer_id)
    check_version(customer.version, if_match=expected_version, body=data.version)
    _check_references(session, data)
    before = snapshot(customer)
    before_tags = [t.name for t in customer.tags]
    for name, value in data.model_dump(exclude={"tags", "version"}, exclude_unset=True).items():
        setattr(customer, name, value)
    if data.tags is not None:
        customer.tags = tags_by_name(session, data.tags, max_new=get_settings().max_new_tags_per_request)
    _refresh_names(customer)
    sharing = identities.sync_primary(session, customer, before)
    duplicates.propose_all(session, customer.id, sharing, "same phone")
    diff = audit.changes(before, snapshot(customer))
    after_tags = [t.name for t in customer.tags]
    if after_tags != before_tags:
        diff["tags"] = [before_tags, after_tags]
    if diff:
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="customer.update",
            entity_type="customer",
            entity_id=customer.id,
            customer_id=customer.id,
            details=diff,
        )
        emit(
            session,
            "customer.updated",
            {"customer_id": customer.id, "fields": sorted(diff)},
            customer_id=customer.id,
            origin=actor.origin,
        )
    return customer


def delete_customer(session: Session, *, actor: Actor, customer_id: int, expected_version: int | None) -> None:
    require(actor, "customers:delete")
    survivor_id = resolve_id(session, customer_id)
    if survivor_id != customer_id:
        raise ValidationError(
            f"customer {customer_id} was merged into customer {survivor_id}; delete {survivor_id} instead",
            field="customer_id",
        )
    customer = get_customer(session, customer_id)
    check_version(customer.version, if_match=expected_version)
    # Records merged into this customer point at it and hold its history; they go with it.
    merged_ids = list(session.scalars(select(Customer.id).where(Customer.merged_into_id == customer.id)))
    if merged_ids:
        session.execute(
            update(Customer)
            .where(Customer.id.in_(merged_ids))
            .values(merged_into_id=None)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(Customer).where(Customer.id.in_(merged_ids)).execution_options(synchronize_session=False)
        )
    audit.record(
        session,
        actor=actor,
        action="customer.delete",
        entity_type="customer",
        entity_id=customer.id,
        customer_id=customer.id,
        summary=customer.full_name,
    )
    emit(session, "customer.deleted", {"customer_id": customer.id}, customer_id=customer.id, origin=actor.origin)
    session.delete(customer)


# --- consent ---------------------------------------------------------------------------------------------


def record_consent(session: Session, *, actor: Actor, customer_id: int, data: ConsentCreate) -> Consent:
    require(actor, "consents:write")
    customer = get_customer(session, customer_id)
    decision = Consent(customer_id=customer.id, recorded_by=actor.label, **data.model_dump(exclude_none=True))
    session.add(decision)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=f"consent.{data.status}",
        entity_type="consent",
        entity_id=decision.id,
        customer_id=customer.id,
        details={"channel": data.channel, "purpose": data.purpose, "method": data.method, "source": data.source},
    )
    emit(
        session,
        "consent.granted" if data.status == "granted" else "consent.withdrawn",
        {"customer_id": customer.id, "channel": data.channel, "purpose": data.purpose},
        customer_id=customer.id,
        origin=actor.origin,
        occurred_at=decision.recorded_at,
    )
    return decision


def current_consents(session: Session, customer_id: int) -> list[Consent]:
    """The consent in force for each channel and purpose (see ``customers.consent``)."""
    return consent.decisions_in_force(session, customer_id)


def has_consent(session: Session, *, customer_id: int, channel: str, purpose: str = "marketing") -> bool:
    """True only when the decision in force for this channel and purpose is ``granted`` (``customers.consent``)."""
    return consent.has_consent(session, customer_id=customer_id, channel=channel, purpose=purpose)


def consent_history(session: Session, customer_id: int) -> list[Consent]:
    return list(session.scalars(select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id.desc())))


# --- notes, identities -----------------------------------------------------------------------------------


def add_note(session: Session, *, actor: Actor, customer_id: int, data: NoteCreate) -> Note:
    require(actor, "notes:write")
    customer = get_customer(session, customer_id)
    note = Note(customer_id=customer.id, author_user_id=actor.user_id, body=data.body)
    session.add(note)
    session.flush()
    audit.record(
        session, actor=actor, action="note.create", entity_type="note", entity_id=note.id, customer_id=customer.id
    )
    return note


def list_notes(session: Session, customer_id: int) -> list[Note]:
    return list(session.scalars(select(Note).where(Note.customer_id == customer_id).order_by(Note.id.desc())))


def list_identities(session: Session, customer_id: int) -> list[CustomerIdentity]:
    return identities.list_identities(session, customer_id)


def count_customers(session: Session) -> int:
    """How many customers the customer list shows with no filter (its default scope: the active ones)."""
    return session.scalar(CUSTOMER_FILTERS.apply(select(func.count()).select_from(Customer), {})) or 0


# --- companies -------------------------------------------------------------------------------------------


def get_company(session: Session, company_id: int) -> Company:
    company = session.get(Company, company_id)
    if company is None:
        raise NotFound(f"company {company_id} not found")
    return company


def create_company(session: Session, *, actor: Actor, data: CompanyCreate) -> Company:
    require(actor, "companies:write")
    _check_references(session, data)
    if data.external_id and session.scalar(select(Company.id).where(Company.external_id == data.external_id)):
        raise Conflict(
            f"a company with external_id {data.external_id} already exists",
            field="external_id",
            key="error.company_external_id_taken",
            params={"value": data.external_id},
        )
    company = Company(**{"attributes": {}, **data.model_dump(exclude_none=True)})
    session.add(company)
    session.flush()
    audit.record(
        session, actor=actor, action="company.create", entity_type="company", entity_id=company.id, summary=company.name
    )
    return company


def update_company(
    session: Session, *, actor: Actor, company_id: int, data: CompanyUpdate, expected_version: int | None
) -> Company:
    require(actor, "companies:write")
    company = get_company(session, company_id)
    check_version(company.version, if_match=expected_version, body=data.version)
    _check_references(session, data)
    changes = data.model_dump(exclude={"version"}, exclude_unset=True)
    if "name" in changes and not changes["name"]:
        raise ValidationError("name cannot be empty", field="name", key="error.missing")
    if changes.get("external_id") and session.scalar(
        select(Company.id).where(and_(Company.external_id == changes["external_id"], Company.id != company.id))
    ):
        raise Conflict(
            f"a company with external_id {changes['external_id']} already exists",
            field="external_id",
            key="error.company_external_id_taken",
            params={"value": changes["external_id"]},
        )
    audit.apply_changes(session, company, changes, actor=actor, entity_type="company")
    return company


def delete_company(session: Session, *, actor: Actor, company_id: int, expected_version: int | None) -> None:
    require(actor, "companies:delete")
    company = get_company(session, company_id)
    check_version(company.version, if_match=expected_version)
    audit.record(
        session, actor=actor, action="company.delete", entity_type="company", entity_id=company.id, summary=company.name
    )
    session.delete(company)
