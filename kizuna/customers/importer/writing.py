"""Writing a batch of customer rows the full way: group the rows into people, merge, update, insert.

Every row that may be somebody already stored, or that shares an identity with another row of its batch, comes
here (new strangers go through ``staging``). Changed customers are updated with one executemany, new ones
inserted with one, and only values that really change are written and versioned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.config import get_settings
from kizuna.customers import consent, duplicates, identities
from kizuna.customers.identities import MIRRORED as IDENTITY_FIELDS
from kizuna.customers.importer.columns import WRITTEN
from kizuna.customers.importer.parsing import CustomerRow, whole_names
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import (
    HINT_KINDS,
    Consent,
    Customer,
    CustomerIdentity,
    CustomerImportMark,
    customer_tags,
)
from kizuna.customers.service import tags_by_name
from kizuna.db import utcnow
from kizuna.imports.bulk import insert_rows
from kizuna.imports.importer import WriteContext, chunked
from kizuna.imports.report import Reason
from kizuna.outbox.service import emit_many


@dataclass
class Person:
    """Rows of one batch that are the same person, and the stored customers they match."""

    rows: list[CustomerRow]
    owners: list[int] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    opt_in: tuple[bool, int] | None = None
    customer_id: int | None = None


def write_people(session: Session, rows: list[CustomerRow], ctx: WriteContext) -> None:
    """Write ``rows`` (one batch) through the full path, counting into ``ctx.report``."""
    report = ctx.report
    origin = ctx.actor.origin
    keys = {key for row in rows for key in row.identities()}
    held = identities.holders(session, keys)
    # A unique identity has one holder; a hint (a phone) any number.
    owners = {k: min(ids) for k, ids in held.items() if k[0] not in HINT_KINDS}
    hints = {k: ids for k, ids in held.items() if k[0] in HINT_KINDS}
    people = _group(rows, owners)
    report.duplicates += len(rows) - len(people)

    pairs: set[tuple[int, int, str]] = set()
    kinds = _unique_kinds(session, {c for p in people if len(p.owners) > 1 for c in p.owners})
    for person in people:
        if len(person.owners) > 1:
            survivor, *others = person.owners
            if any(kinds.get(survivor, set()) & kinds.get(other, set()) for other in others):
                # Both records already hold their own e-mail (or LINE id, or id in one system): the row cannot
                # tell which is right, so a person decides. The row updates the first and claims nothing of
                # the others'.
                _leave_others(person, survivor, owners)
                pairs.update((survivor, other, f"import {ctx.options.file_name} line {person.rows[-1].line}")
                             for other in others)  # fmt: skip
                report.warn(person.rows[-1].line, "customer", _ambiguous(person.owners))
                continue
            for other in others:
                kinds = sorted({kind for kind, value in _keys(person) if owners.get((kind, value)) == other})
                reason = f"import {ctx.options.file_name}: same {' and '.join(kinds) or 'identity'}"
                merge_customers(session, actor=ctx.actor, survivor_id=survivor, merged_id=other, reason=reason)
                report.merged += 1
            person.owners = [survivor]
    session.flush()
    session.expire_all()

    now = utcnow()
    superseded = _superseded(session, people, ctx.options.file_sha256)
    if superseded:
        # A later row of this same file already wrote these people (a run before this one): nothing to do.
        report.unchanged += len(superseded)
        people = [p for p in people if id(p) not in superseded]
    existing = [p for p in people if p.owners]
    new = [p for p in people if not p.owners]
    updated, unchanged = _update_existing(session, existing, now, ctx)
    report.updated += updated
    report.unchanged += unchanged
    _insert_new(session, new, now)
    emit_many(
        session, "customer.created", [({"customer_id": p.customer_id}, p.customer_id, None) for p in new], origin=origin
    )
    report.inserted += len(new)
    _add_identities(session, people, owners, hints, now)
    pairs.update(_shared_hints(people, hints))
    report.note("possible duplicates proposed", duplicates.propose_many(session, pairs))
    report.note("tags added", add_tags(session, people, announce={p.customer_id for p in existing}, origin=origin))
    report.note("consents recorded", record_consents(session, people, ctx, now))


def _keys(person: Person) -> list[tuple[str, str]]:
    return list(dict.fromkeys(key for row in person.rows for key in row.identities()))


def _unique_kinds(session: Session, customer_ids: set[int]) -> dict[int, set[str]]:
    """The unique identity kinds each customer holds (to see whether two records can be one person)."""
    held: dict[int, set[str]] = {}
    for chunk in chunked(sorted(customer_ids), 5000):
        query = select(CustomerIdentity.customer_id, CustomerIdentity.kind).where(
            CustomerIdentity.customer_id.in_(chunk), CustomerIdentity.kind.not_in(HINT_KINDS)
        )
        for customer_id, kind in session.execute(query):
            held.setdefault(customer_id, set()).add(kind)
    return held


def _leave_others(person: Person, survivor: int, owners: dict[tuple[str, str], int]) -> None:
    """The person writes to ``survivor`` only: mirrored values that are another customer's identities go."""
    for kind, value in _keys(person):
        holder = owners.get((kind, value))
        if holder is not None and holder != survivor and person.values.get(kind) == value:
            del person.values[kind]
    person.owners = [survivor]


def _ambiguous(owners: list[int]) -> Reason:
    listed = ", ".join(str(o) for o in owners)
    return Reason(
        f"matches customers {listed}, who each hold their own identity of the same kind; "
        "not merged, proposed for review",
        "error.import_ambiguous_customer",
        {"customers": listed},
    )


def _shared_hints(people: list[Person], hints: dict[tuple[str, str], set[int]]) -> set[tuple[int, int, str]]:
    """Pairs of customers that share a hint (a phone): with stored holders and within the batch."""
    holders = {key: set(ids) for key, ids in hints.items()}
    for person in people:
        for key in _keys(person):
            if key[0] in HINT_KINDS and person.customer_id is not None:
                holders.setdefault(key, set()).add(person.customer_id)
    pairs = set()
    for (kind, _value), ids in holders.items():
        ordered = sorted(ids)
        pairs.update((a, b, f"same {kind}") for i, a in enumerate(ordered) for b in ordered[i + 1 :])
    return pairs


def _group(rows: list[CustomerRow], owners: dict[tuple[str, str], int]) -> list[Person]:
    """Union rows that share a unique identity or match the same stored customer; later rows win field by field.

    Hints (a phone) never join rows: a family or an office shares one. They propose duplicate pairs instead.
    """
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Any, int] = {}
    for i, row in enumerate(rows):
        for key in row.identities():
            if key[0] in HINT_KINDS:
                continue
            for marker in (key, ("customer", owners.get(key))):
                if marker[1] is None:
                    continue
                j = first.setdefault(marker, i)
                if j != i:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    groups: dict[int, Person] = {}
    for i, row in enumerate(rows):
        person = groups.setdefault(find(i), Person(rows=[]))
        person.rows.append(row)
    for person in groups.values():
        found = set()
        for row in person.rows:
            person.values.update(row.values)
            found.update(owners[k] for k in row.identities() if k in owners)
            if row.tags:
                person.tags.extend(t for t in row.tags if t not in person.tags)
            if row.email_opt_in is not None:
                person.opt_in = (row.email_opt_in, row.line)
        if "attributes" in person.values:
            merged: dict[str, Any] = {}
            for row in person.rows:
                merged.update(row.values.get("attributes") or {})
            person.values["attributes"] = merged
        person.owners = sorted(found)
    return list(groups.values())


CUSTOMERS = Customer.__table__
# Recomputed from the name parts; an audit diff shows the parts, as an API update does.
DERIVED = ("full_name", "full_name_kana")
NO_ATTRIBUTES: dict[str, Any] = {}
_UPDATE = (
    update(CUSTOMERS)
    .where(CUSTOMERS.c.id == bindparam("b_id"))
    .values(
        {
            **{
                name: bindparam(f"b_{name}", type_=CUSTOMERS.c[name].type)
                for name in (*WRITTEN, "attributes", "full_name", "full_name_kana")
            },
            "version": CUSTOMERS.c.version + 1,
            "updated_at": bindparam("b_now", type_=CUSTOMERS.c.updated_at.type),
        }
    )
)


def _superseded(session: Session, people: list[Person], file_sha256: str) -> set[int]:
    """id() of the people whose stored customer a later line of the same file changed last."""
    if not file_sha256:
        return set()
    stored = {p.owners[0]: p for p in people if p.owners}
    out: set[int] = set()
    marks = CustomerImportMark.__table__.c
    for chunk in chunked(sorted(stored), 5000):
        query = select(marks.customer_id, marks.line).where(
            marks.customer_id.in_(chunk), marks.file_sha256 == file_sha256
        )
        for customer_id, line in session.execute(query):
            person = stored[customer_id]
            if line > max(row.line for row in person.rows):
                out.add(id(person))
    return out


def _mark(session: Session, marks: dict[int, int], file_sha256: str) -> None:
    """Remember, per customer, the line of this file that changed it last (see CustomerImportMark)."""
    if not marks or not file_sha256:
        return
    table = CustomerImportMark.__table__
    for chunk in chunked(sorted(marks), 5000):
        session.execute(delete(table).where(table.c.customer_id.in_(chunk)))
    rows = [{"customer_id": c, "file_sha256": file_sha256, "line": line} for c, line in marks.items()]
    session.execute(insert(table), rows)


def _update_existing(session: Session, people: list[Person], now: dt.datetime, ctx: WriteContext) -> tuple[int, int]:
    """Fill or overwrite stored customers with the file's values; only real changes are written (and versioned).

    Each changed customer gets what an API update gives it: an audit row with the old and new values and a
    ``customer.updated`` message naming the fields.
    """
    file_sha256 = ctx.options.file_sha256
    if not people:
        return 0, 0
    columns = [CUSTOMERS.c[name] for name in (*WRITTEN, "attributes", "full_name", "full_name_kana")]
    current: dict[int, dict[str, Any]] = {}
    for chunk in chunked([p.owners[0] for p in people], 5000):
        for row in session.execute(select(CUSTOMERS.c.id, *columns).where(CUSTOMERS.c.id.in_(chunk))):
            current[row.id] = row._asdict()
    params = []
    unchanged = 0
    changed: dict[int, int] = {}
    diffs: dict[int, dict[str, list[Any]]] = {}
    for person in people:
        person.customer_id = person.owners[0]
        before = current[person.customer_id]
        after = {**before, **person.values}
        if "attributes" in person.values:
            after["attributes"] = {**(before["attributes"] or {}), **person.values["attributes"]}
        after.update(whole_names(after))
        if after == before:
            unchanged += 1
            continue
        param = {f"b_{name}": value for name, value in after.items()}
        param["b_now"] = now
        params.append(param)
        changed[person.customer_id] = max(row.line for row in person.rows)
        diffs[person.customer_id] = audit.changes(
            {k: v for k, v in before.items() if k not in DERIVED}, {k: v for k, v in after.items() if k not in DERIVED}
        )
    if params:
        session.execute(_UPDATE, params)
        _mark(session, changed, file_sha256)
        audit.record_many(
            session,
            actor=ctx.actor,
            action="customer.update",
            entity_type="customer",
            entries=[(cid, cid, diff) for cid, diff in diffs.items()],
            summary=f"import {ctx.options.file_name}",
        )
        emit_many(
            session,
            "customer.updated",
            [({"customer_id": cid, "fields": sorted(diff)}, cid, None) for cid, diff in diffs.items()],
            origin=ctx.actor.origin,
        )
    return len(params), unchanged


def _insert_new(session: Session, people: list[Person], now: dt.datetime) -> None:
    if not people:
        return
    settings = get_settings()
    rows = []
    fixed = {
        "timezone": settings.default_timezone,
        "locale": settings.default_locale,
        "created_at": now,
        "updated_at": now,
    }
    for person in people:
        row = dict.fromkeys(WRITTEN)
        row.update(person.values)
        if len(person.rows) == 1:
            row["full_name"], row["full_name_kana"] = person.rows[0].names
        else:
            row.update(whole_names(row))
        # One shared empty dict: the bulk insert serialises it once per batch.
        row["attributes"] = row.get("attributes") or NO_ATTRIBUTES
        row["source"] = row["source"] or "import"
        row.update(fixed)
        rows.append(row)
    # Ids come back by one range query rather than RETURNING: SQLite returns rows one statement per row when
    # their order matters. Ours are the rows above the highest id seen before with this batch's timestamp,
    # each matched to its person by a primary identity no other person in the batch shares.
    # Each person is read back by its first primary identity; people who share theirs (two new customers with
    # only the same phone) are inserted one by one instead.
    first_key = [next(((k, row[k]) for k in IDENTITY_FIELDS if row[k]), None) for row in rows]
    seen: dict[tuple[str, str] | None, int] = {}
    for key in first_key:
        seen[key] = seen.get(key, 0) + 1
    alone = [i for i, key in enumerate(first_key) if key is None or seen[key] > 1]
    for i in alone:
        people[i].customer_id = session.execute(
            insert(CUSTOMERS).values(rows[i]).returning(CUSTOMERS.c.id)
        ).scalar_one()
    if alone:
        skip = set(alone)
        people = [p for i, p in enumerate(people) if i not in skip]
        rows = [r for i, r in enumerate(rows) if i not in skip]
        if not rows:
            return
    highest = session.scalar(select(func.max(CUSTOMERS.c.id))) or 0
    insert_rows(session, CUSTOMERS, rows)
    by_identity = {
        (kind, row[kind]): person
        for person, row in zip(people, rows, strict=True)
        for kind in IDENTITY_FIELDS
        if row[kind]
    }
    query = select(CUSTOMERS.c.id, *(CUSTOMERS.c[kind] for kind in IDENTITY_FIELDS)).where(
        CUSTOMERS.c.id > highest, CUSTOMERS.c.created_at == now
    )
    for customer_id, *primaries in session.execute(query):
        kind, value = next((k, v) for k, v in zip(IDENTITY_FIELDS, primaries, strict=True) if v)
        by_identity[(kind, value)].customer_id = customer_id
    missing = [p for p in people if p.customer_id is None]
    if missing:
        raise RuntimeError(f"{len(missing)} inserted customers could not be read back")


def _add_identities(
    session: Session,
    people: list[Person],
    owners: dict[tuple[str, str], int],
    hints: dict[tuple[str, str], set[int]],
    now: dt.datetime,
) -> None:
    rows = [
        {"customer_id": person.customer_id, "kind": kind, "value": value, "created_at": now}
        for person in people
        for kind, value in _keys(person)
        if (kind, value) not in owners and person.customer_id not in hints.get((kind, value), ())
    ]
    insert_rows(session, CustomerIdentity.__table__, rows)


def add_tags(session: Session, people: list[Person], *, announce: Collection[int] = (), origin: str = "import") -> int:
    """Give people the tags their rows name (never removing one); returns how many were added. Customers in
    ``announce`` (those that existed before this import) get a ``customer.updated`` message naming the tags,
    as the API's update writes: segments over tags follow the outbox."""
    tagged = [p for p in people if p.tags]
    if not tagged:
        return 0
    tags = {t.name: t for t in tags_by_name(session, [name for p in tagged for name in p.tags])}
    session.flush()
    wanted = {(p.customer_id, tags[name].id) for p in tagged for name in p.tags}
    have: set[tuple[int, int]] = set()
    for chunk in chunked(sorted(wanted), 2000):
        query = select(customer_tags.c.customer_id, customer_tags.c.tag_id).where(
            tuple_(customer_tags.c.customer_id, customer_tags.c.tag_id).in_(chunk)
        )
        have.update(tuple(r) for r in session.execute(query))
    missing = sorted(wanted - have)
    if missing:
        session.execute(insert(customer_tags), [{"customer_id": c, "tag_id": t} for c, t in missing])
        known = set(announce)
        retagged = sorted({c for c, _ in missing if c in known})
        messages = [({"customer_id": c, "fields": ["tags"]}, c, None) for c in retagged]
        emit_many(session, "customer.updated", messages, origin=origin)
    return len(missing)


def record_consents(session: Session, people: list[Person], ctx: WriteContext, now: dt.datetime) -> int:
    """An email-marketing consent row where the file's answer differs from the decision in force."""
    asked = {p.customer_id: p.opt_in for p in people if p.opt_in is not None}
    if not asked:
        return 0
    in_force = consent.statuses_in_force(session, asked, channel="email", purpose=consent.MARKETING)
    rows = []
    for customer_id, (granted, line) in asked.items():
        status = "granted" if granted else "withdrawn"
        if in_force.get(customer_id) == status:
            continue
        rows.append(
            {
                "customer_id": customer_id,
                "channel": "email",
                "purpose": "marketing",
                "status": status,
                "method": "import",
                "evidence": f"{ctx.options.file_name} line {line}",
                "recorded_at": now,
                "recorded_by": ctx.actor.label,
            }
        )
    if rows:
        session.execute(insert(Consent.__table__), rows)
        for status in ("granted", "withdrawn"):
            emit_many(
                session,
                f"consent.{status}",
                [
                    (
                        {"customer_id": r["customer_id"], "channel": "email", "purpose": "marketing"},
                        r["customer_id"],
                        now,
                    )
                    for r in rows
                    if r["status"] == status
                ],
                origin=ctx.actor.origin,
            )
    return len(rows)


def _consent_payload(row: dict[str, Any]) -> dict[str, Any]:
    return {"customer_id": row["customer_id"], "channel": row["channel"], "purpose": row["purpose"]}
