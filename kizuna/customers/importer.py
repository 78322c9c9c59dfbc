"""Importing customers: normalise each row, recognise the same person by email, phone or external id, write in bulk.

Rows that share an identity (within the file or with a stored customer) become one customer; a row that links
two stored customers merges them (the older one survives). New customers and identities are inserted with
one executemany per batch and changed ones updated the same way, so a million rows take seconds, not hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydantic
from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Consent, Customer, CustomerIdentity, customer_tags
from kizuna.customers.normalize import full_name
from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import IDENTITY_FIELDS, tags_by_name
from kizuna.db import utcnow
from kizuna.imports.bulk import insert_rows
from kizuna.imports.importer import ImportOptions, RowRejected, WriteContext, chunked, errors_from, field_error
from kizuna.imports.reader import Columns, Record
from kizuna.imports.values import nfkc, parse_bool, parse_date, split_tags

ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "顧客ID",
        "顧客番号",
        "顧客コード",
        "会員ID",
        "会員番号",
        "customer id",
        "customer no",
        "member id",
    ),
    "email": ("メールアドレス", "メール", "Eメール", "e-mail", "mail", "email address", "mail address"),
    "phone": ("電話番号", "電話", "携帯電話", "携帯電話番号", "携帯番号", "TEL", "telephone", "phone number", "mobile"),
    "family_name": ("姓", "苗字", "名字", "氏", "last name", "surname", "family name"),
    "given_name": ("名", "first name", "given name"),
    "family_name_kana": (
        "セイ",
        "せい",
        "姓(カナ)",
        "姓カナ",
        "姓(フリガナ)",
        "姓フリガナ",
        "姓(ふりがな)",
        "last name kana",
    ),
    "given_name_kana": (
        "メイ",
        "めい",
        "名(カナ)",
        "名カナ",
        "名(フリガナ)",
        "名フリガナ",
        "名(ふりがな)",
        "first name kana",
    ),
    "birth_date": ("生年月日", "誕生日", "birthday", "date of birth", "dob"),
    "gender": ("性別", "sex"),
    "postal_code": ("郵便番号", "〒", "zip", "zip code", "postcode"),
    "prefecture": ("都道府県", "state"),
    "city": ("市区町村", "市町村"),
    "address_line": ("住所", "番地", "住所1", "address", "address1", "street"),
    "country": ("国", "国コード", "country code"),
    "source": ("流入元", "登録経路"),
    "tags": ("タグ", "tag"),
    "email_opt_in": (
        "メール配信許諾",
        "メール配信",
        "メール配信希望",
        "メルマガ",
        "メルマガ配信",
        "newsletter",
        "email consent",
    ),
}
COLUMNS = Columns(aliases=ALIASES, required=[IDENTITY_FIELDS])
# The columns an import fills; the rest (owner, stage, locale...) are the CRM's own.
WRITTEN = tuple(f for f in ALIASES if f not in ("tags", "email_opt_in"))
_GENDERS = {
    "male": ("男", "男性", "m", "male", "man"),
    "female": ("女", "女性", "f", "female", "woman"),
    "other": ("その他", "other"),
    "unknown": ("不明", "未回答", "回答しない", "unknown"),
}
_GENDER = {alias: gender for gender, aliases in _GENDERS.items() for alias in aliases}


@dataclass(slots=True)
class CustomerRow:
    line: int
    values: dict[str, Any]
    tags: list[str] | None = None
    email_opt_in: bool | None = None

    def identities(self) -> list[tuple[str, str]]:
        return [(kind, self.values[kind]) for kind in IDENTITY_FIELDS if kind in self.values]


@dataclass
class _Person:
    """Rows of one batch that are the same person, and the stored customers they match."""

    rows: list[CustomerRow]
    owners: list[int] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    opt_in: tuple[bool, int] | None = None
    customer_id: int | None = None


class CustomerImporter:
    kind = "customers"
    columns = COLUMNS
    parallel = True

    def parse(self, record: Record, options: ImportOptions) -> CustomerRow:
        raw = dict(record.values)
        errors: list[tuple[str, str]] = []
        tags = opt_in = None
        if "tags" in raw:
            tags = split_tags(raw.pop("tags"))
            long = [t for t in tags if len(t) > 100]
            if long:
                errors.append(field_error("tags", f"tag '{long[0][:20]}...' is longer than 100 characters"))
        if "email_opt_in" in raw:
            try:
                opt_in = parse_bool(raw.pop("email_opt_in"))
            except ValueError as exc:
                errors.append(field_error("email_opt_in", exc))
        if "birth_date" in raw:
            try:
                raw["birth_date"] = parse_date(raw["birth_date"])
            except ValueError as exc:
                errors.append(field_error("birth_date", exc))
                del raw["birth_date"]
        if "gender" in raw:
            raw["gender"] = _GENDER.get(nfkc(raw["gender"]).casefold(), raw["gender"])
        if options.extra_to_attributes and record.extras:
            raw["attributes"] = {k.strip(): v for k, v in record.extras.items()}
        try:
            data = CustomerCreate(**raw)
        except pydantic.ValidationError as exc:
            errors.extend(errors_from(exc))
        if errors:
            raise RowRejected(errors)
        values = data.model_dump(exclude_none=True, exclude={"tags"})
        if not any(kind in values for kind in IDENTITY_FIELDS):
            raise RowRejected([("email", "a row needs an email, phone or external_id to recognise the customer")])
        return CustomerRow(record.line, values, tags, opt_in)

    def batches(self, rows: Iterable[CustomerRow], size: int) -> Iterator[list[CustomerRow]]:
        return chunked(rows, size)

    def write(self, session: Session, rows: list[CustomerRow], ctx: WriteContext) -> None:
        report = ctx.report
        owners = _identity_owners(session, {key for row in rows for key in row.identities()})
        people = _group(rows, owners)
        report.duplicates += len(rows) - len(people)

        for person in people:
            if len(person.owners) > 1:
                survivor, *others = person.owners
                for other in others:
                    kinds = sorted({kind for kind, value in _keys(person) if owners.get((kind, value)) == other})
                    reason = f"import {ctx.options.file_name}: same {' and '.join(kinds) or 'identity'}"
                    merge_customers(session, actor=ctx.actor, survivor_id=survivor, merged_id=other, reason=reason)
                    report.merged += 1
                person.owners = [survivor]
        session.flush()
        session.expire_all()

        now = utcnow()
        existing = [p for p in people if p.owners]
        new = [p for p in people if not p.owners]
        updated, unchanged = _update_existing(session, existing, now)
        report.updated += updated
        report.unchanged += unchanged
        _insert_new(session, new, now)
        report.inserted += len(new)
        _add_identities(session, people, owners, now)
        report.note("tags added", _add_tags(session, people))
        report.note("consents recorded", _record_consents(session, people, ctx, now))


IMPORTER = CustomerImporter()


def _keys(person: _Person) -> list[tuple[str, str]]:
    return list(dict.fromkeys(key for row in person.rows for key in row.identities()))


def _identity_owners(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Stored identity -> customer id, one IN query per kind."""
    owners: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, value in keys:
        by_kind.setdefault(kind, []).append(value)
    for kind, values in by_kind.items():
        for chunk in chunked(values, 5000):
            query = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == kind, CustomerIdentity.value.in_(chunk)
            )
            for value, customer_id in session.execute(query):
                owners[(kind, value)] = customer_id
    return owners


def _group(rows: list[CustomerRow], owners: dict[tuple[str, str], int]) -> list[_Person]:
    """Union rows that share an identity or match the same stored customer; later rows win field by field."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Any, int] = {}
    for i, row in enumerate(rows):
        for key in row.identities():
            for marker in (key, ("customer", owners.get(key))):
                if marker[1] is None:
                    continue
                j = first.setdefault(marker, i)
                if j != i:
                    a, b = find(i), find(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    groups: dict[int, _Person] = {}
    for i, row in enumerate(rows):
        person = groups.setdefault(find(i), _Person(rows=[]))
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


def _names(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "full_name": full_name(values.get("family_name"), values.get("given_name")),
        "full_name_kana": full_name(values.get("family_name_kana"), values.get("given_name_kana")) or None,
    }


_table = Customer.__table__
_UPDATE = (
    update(_table)
    .where(_table.c.id == bindparam("b_id"))
    .values(
        {
            **{
                name: bindparam(f"b_{name}", type_=_table.c[name].type)
                for name in (*WRITTEN, "attributes", "full_name", "full_name_kana")
            },
            "version": _table.c.version + 1,
            "updated_at": bindparam("b_now", type_=_table.c.updated_at.type),
        }
    )
)


def _update_existing(session: Session, people: list[_Person], now: dt.datetime) -> tuple[int, int]:
    """Fill or overwrite stored customers with the file's values; only real changes are written (and versioned)."""
    if not people:
        return 0, 0
    columns = [_table.c[name] for name in (*WRITTEN, "attributes", "full_name", "full_name_kana")]
    current: dict[int, dict[str, Any]] = {}
    for chunk in chunked([p.owners[0] for p in people], 5000):
        for row in session.execute(select(_table.c.id, *columns).where(_table.c.id.in_(chunk))):
            current[row.id] = row._asdict()
    params = []
    unchanged = 0
    for person in people:
        person.customer_id = person.owners[0]
        before = current[person.customer_id]
        after = {**before, **person.values}
        if "attributes" in person.values:
            after["attributes"] = {**(before["attributes"] or {}), **person.values["attributes"]}
        after.update(_names(after))
        if after == before:
            unchanged += 1
            continue
        param = {f"b_{name}": value for name, value in after.items()}
        param["b_now"] = now
        params.append(param)
    if params:
        session.execute(_UPDATE, params)
    return len(params), unchanged


def _insert_new(session: Session, people: list[_Person], now: dt.datetime) -> None:
    if not people:
        return
    settings = get_settings()
    rows = []
    for person in people:
        row = dict.fromkeys(WRITTEN)
        row.update(person.values)
        row.update(_names(row))
        row.setdefault("attributes", {})
        row["source"] = row["source"] or "import"
        row.update(
            timezone=settings.default_timezone,
            locale=settings.default_locale,
            created_at=now,
            updated_at=now,
            attributes=row["attributes"] or {},
        )
        rows.append(row)
    # Ids come back by one range query rather than RETURNING: SQLite returns rows one statement per row when
    # their order matters. Ours are the rows above the highest id seen before with this batch's timestamp,
    # each matched to its person by a primary identity no other person in the batch shares.
    highest = session.scalar(select(func.max(_table.c.id))) or 0
    insert_rows(session, _table, rows)
    by_identity = {
        (kind, row[kind]): person
        for person, row in zip(people, rows, strict=True)
        for kind in IDENTITY_FIELDS
        if row[kind]
    }
    query = select(_table.c.id, *(_table.c[kind] for kind in IDENTITY_FIELDS)).where(
        _table.c.id > highest, _table.c.created_at == now
    )
    for customer_id, *identities in session.execute(query):
        kind, value = next((k, v) for k, v in zip(IDENTITY_FIELDS, identities, strict=True) if v)
        by_identity[(kind, value)].customer_id = customer_id
    missing = [p for p in people if p.customer_id is None]
    if missing:
        raise RuntimeError(f"{len(missing)} inserted customers could not be read back")


def _add_identities(
    session: Session, people: list[_Person], owners: dict[tuple[str, str], int], now: dt.datetime
) -> None:
    rows = [
        {"customer_id": person.customer_id, "kind": kind, "value": value, "created_at": now}
        for person in people
        for kind, value in _keys(person)
        if (kind, value) not in owners
    ]
    insert_rows(session, CustomerIdentity.__table__, rows)


def _add_tags(session: Session, people: list[_Person]) -> int:
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
    return len(missing)


def _record_consents(session: Session, people: list[_Person], ctx: WriteContext, now: dt.datetime) -> int:
    """An email-marketing consent row where the file's answer differs from the decision in force."""
    asked = {p.customer_id: p.opt_in for p in people if p.opt_in is not None}
    if not asked:
        return 0
    in_force: dict[int, str] = {}
    for chunk in chunked(sorted(asked), 5000):
        query = (
            select(Consent.customer_id, Consent.status)
            .where(Consent.customer_id.in_(chunk), Consent.channel == "email", Consent.purpose == "marketing")
            .order_by(Consent.recorded_at, Consent.id)
        )
        for customer_id, status in session.execute(query):
            in_force[customer_id] = status
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
    return len(rows)
