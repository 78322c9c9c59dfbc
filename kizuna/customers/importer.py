"""Importing customers: normalise each row, recognise the same person by email, phone or external id, write in bulk.

Rows that share an identity (within the file or with a stored customer) become one customer; a row that links
two stored customers merges them (the older one survives). New customers and identities are inserted with
one executemany per batch and changed ones updated the same way, so a million rows take seconds, not hours.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import annotated_types
import pydantic
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from kizuna.config import get_settings
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Consent, Customer, CustomerIdentity, CustomerImportMark, customer_tags
from kizuna.customers.normalize import full_name, split_full_name
from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import IDENTITY_FIELDS, tags_by_name
from kizuna.db import JSONType, UTCDateTime, next_free_id, utcnow
from kizuna.imports.bulk import insert_rows, insert_tuples, reset_scratch, scratch_table, tuple_insert
from kizuna.imports.importer import (
    STAGED_SCHEMA,
    ImportOptions,
    RowRejected,
    Staged,
    WriteContext,
    chunked,
    errors_from,
    field_error,
)
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
# One column with the whole name (and its reading), as many Japanese systems export it; split on the way in.
ALIASES["full_name"] = ("氏名", "名前", "お名前", "フルネーム", "顧客名", "name", "customer name")
ALIASES["full_name_kana"] = (
    "フリガナ",
    "ふりがな",
    "氏名カナ",
    "氏名(カナ)",
    "氏名(フリガナ)",
    "カナ氏名",
    "furigana",
    "name kana",
)
COLUMNS = Columns(aliases=ALIASES, required=[IDENTITY_FIELDS])
# The columns an import fills; the rest (owner, stage, locale...) are the CRM's own.
WRITTEN = tuple(f for f in ALIASES if f not in ("tags", "email_opt_in", "full_name", "full_name_kana"))
# A whole-name column fills these only when the file has no separate columns for them.
_WHOLE_NAMES = (("full_name", "family_name", "given_name"), ("full_name_kana", "family_name_kana", "given_name_kana"))
_GENDERS = {
    "male": ("男", "男性", "m", "male", "man"),
    "female": ("女", "女性", "f", "female", "woman"),
    "other": ("その他", "other"),
    "unknown": ("不明", "未回答", "回答しない", "unknown"),
}
_GENDER = {alias: gender for gender, aliases in _GENDERS.items() for alias in aliases}


# A parsed row's values in this order: rows travel from the parser processes, and into the staging table, as
# tuples (None for an empty cell), which pickle and insert far cheaper than one dictionary per row.
FIELDS = (*WRITTEN, "attributes")
_AT = {name: i for i, name in enumerate(FIELDS)}
_IDENTITY_AT = tuple((kind, _AT[kind]) for kind in IDENTITY_FIELDS)


@dataclass(slots=True)
class CustomerRow:
    line: int
    fields: tuple[Any, ...]
    tags: list[str] | None = None
    email_opt_in: bool | None = None
    # (full_name, full_name_kana) of this row alone, computed by the parser (in a worker process).
    names: tuple[str, str | None] = ("", None)
    _values: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Positional arguments pickle smaller and faster than the slots' state.
        return CustomerRow, (self.line, self.fields, self.tags, self.email_opt_in, self.names)

    @property
    def values(self) -> dict[str, Any]:
        """The row's non-empty values by field name (built on first use: most rows never need it)."""
        if self._values is None:
            self._values = {name: v for name, v in zip(FIELDS, self.fields, strict=True) if v is not None}
        return self._values

    def identities(self) -> list[tuple[str, str]]:
        fields = self.fields
        return [(kind, fields[i]) for kind, i in _IDENTITY_AT if fields[i] is not None]


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
    # Non-unique indexes on random keys that no step of the import reads (it finds people through the unique
    # customer_identities index); a first import into an empty table builds them once at the end instead.
    bulk_indexes = (
        (
            Customer.__table__,
            ("ix_customers_email", "ix_customers_phone", "ix_customers_full_name", "ix_customers_external_id"),
        ),
    )

    def __init__(self, *, set_based: bool = True) -> None:
        # set_based=False sends every row through the full path (tests prove both paths write the same).
        self.set_based = set_based

    def parse(self, record: Record, options: ImportOptions) -> CustomerRow:
        raw = dict(record.values)
        errors: list[tuple[str, str]] = []
        tags = opt_in = None
        for whole, family, given in _WHOLE_NAMES:
            if whole in raw:
                text = raw.pop(whole)
                if family not in raw and given not in raw and isinstance(text, str):
                    raw[family], raw[given] = split_full_name(text)
        if "tags" in raw:
            tags = split_tags(raw.pop("tags"))
            long = [t for t in tags if len(t) > 100]
            if long:
                errors.append(field_error("tags", f"tag '{long[0][:20]}...' is longer than 100 characters"))
            if len(tags) > (most := get_settings().max_tags_per_customer):
                errors.append(field_error("tags", f"{len(tags)} tags; a customer has at most {most}"))
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
        values = _fast_values(raw)
        if values is None:
            # Something the fast path does not judge (an error, a field without a plain check): Pydantic decides,
            # with its own messages.
            try:
                data = CustomerCreate(**raw)
            except pydantic.ValidationError as exc:
                errors.extend(errors_from(exc))
            else:
                values = data.model_dump(exclude_none=True, exclude={"tags"})
        if errors:
            raise RowRejected(errors)
        assert values is not None
        if not any(kind in values for kind in IDENTITY_FIELDS):
            raise RowRejected([("email", "a row needs an email, phone or external_id to recognise the customer")])
        names = _names(values)
        return CustomerRow(
            record.line, tuple(map(values.get, FIELDS)), tags, opt_in, (names["full_name"], names["full_name_kana"])
        )

    def batches(self, rows: Iterable[CustomerRow | Staged], size: int) -> Iterator[list[CustomerRow] | Staged]:
        batch: list[CustomerRow] = []
        for row in rows:
            if isinstance(row, Staged):
                # A staged range is a batch of its own (the parser sized it so).
                if batch:
                    yield batch
                    batch = []
                yield row
                continue
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def stage(self, rows: list[CustomerRow], path: Path) -> None:
        stage_rows(rows, path)

    def write(self, session: Session, batch: list[CustomerRow] | Staged, ctx: WriteContext) -> None:
        report = ctx.report
        # Most rows of a big file are people nobody has seen; they go in set-based, the rest one group at a time.
        rows = _insert_strangers(session, batch, ctx) if self.set_based or isinstance(batch, Staged) else batch
        if not rows:
            return
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
        superseded = _superseded(session, people, ctx.options.file_sha256)
        if superseded:
            # A later row of this same file already wrote these people (a run before this one): nothing to do.
            report.unchanged += len(superseded)
            people = [p for p in people if id(p) not in superseded]
        existing = [p for p in people if p.owners]
        new = [p for p in people if not p.owners]
        updated, unchanged = _update_existing(session, existing, now, ctx.options.file_sha256)
        report.updated += updated
        report.unchanged += unchanged
        _insert_new(session, new, now)
        report.inserted += len(new)
        _add_identities(session, people, owners, now)
        report.note("tags added", _add_tags(session, people))
        report.note("consents recorded", _record_consents(session, people, ctx, now))


IMPORTER = CustomerImporter()

# The per-field checks of CustomerCreate, read from the model itself so its validators (the normalisers) and
# limits stay the only rules: a row whose every field passes them gets exactly the values Pydantic would give,
# without building a model per row; anything else goes through CustomerCreate.
_INVALID = object()


def _field_checks(model: type[pydantic.BaseModel]) -> dict[str, Callable[[Any], Any]]:
    with_validators = {f for d in model.__pydantic_decorators__.field_validators.values() for f in d.info.fields}
    checks: dict[str, Callable[[Any], Any]] = {}
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation)
        if name in with_validators or len(args) != 2 or args[1] is not type(None):
            continue
        inner = args[0]
        limits = [m for m in info.metadata if isinstance(m, annotated_types.MinLen | annotated_types.MaxLen)]
        if len(limits) != len(info.metadata):
            continue
        low = max([m.min_length for m in limits if isinstance(m, annotated_types.MinLen)], default=0)
        high = min([m.max_length for m in limits if isinstance(m, annotated_types.MaxLen)], default=None)
        if typing.get_origin(inner) is typing.Annotated:
            base, *meta = typing.get_args(inner)
            if base is str and len(meta) == 1 and isinstance(meta[0], pydantic.BeforeValidator):
                checks[name] = _str_check(meta[0].func, low, high, cached=name not in _UNIQUE_FIELDS)  # type: ignore[arg-type]
        elif not limits and typing.get_origin(inner) is typing.Literal:
            checks[name] = _choice_check(frozenset(typing.get_args(inner)))
        elif not limits and inner is dt.date:
            checks[name] = _date_check
    return checks


def _str_check(func: Callable[[Any], Any], low: int, high: int | None, *, cached: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            out = func(value)
        except ValueError:
            return _INVALID
        if type(out) is not str or len(out) < low or (high is not None and len(out) > high) or out != out.strip():
            return _INVALID
        return out

    if not cached:
        return check
    # Names, readings, prefectures and cities repeat across a customer file; each distinct text is judged once
    # per parser process (the checks are pure functions of the text).
    remembered = lru_cache(maxsize=16384)(check)

    def check_cached(value: Any) -> Any:
        return remembered(value) if type(value) is str else check(value)

    return check_cached


# Values nearly every row has its own of: a cache would only churn.
_UNIQUE_FIELDS = frozenset({"email", "phone", "external_id", "address_line"})


def _choice_check(choices: frozenset[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return value if type(value) is str and value in choices else _INVALID

    return check


def _date_check(value: Any) -> Any:
    return value if type(value) is dt.date else _INVALID


_CHECKS = _field_checks(CustomerCreate)


def _fast_values(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The row's normalised values when every field passes its check; None to let CustomerCreate decide."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        check = _CHECKS.get(name)
        if check is None:
            return None
        clean = check(value)
        if clean is _INVALID:
            return None
        values[name] = clean
    return values


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
_NO_ATTRIBUTES: dict[str, Any] = {}
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


def _superseded(session: Session, people: list[_Person], file_sha256: str) -> set[int]:
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


def _update_existing(
    session: Session, people: list[_Person], now: dt.datetime, file_sha256: str = ""
) -> tuple[int, int]:
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
    changed: dict[int, int] = {}
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
        changed[person.customer_id] = max(row.line for row in person.rows)
    if params:
        session.execute(_UPDATE, params)
        _mark(session, changed, file_sha256)
    return len(params), unchanged


def _insert_new(session: Session, people: list[_Person], now: dt.datetime) -> None:
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
            row.update(_names(row))
        # One shared empty dict: the bulk insert serialises it once per batch.
        row["attributes"] = row.get("attributes") or _NO_ATTRIBUTES
        row["source"] = row["source"] or "import"
        row.update(fixed)
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
            .order_by(Consent.id)
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


# Set-based path for rows that are nobody we know: the batch is staged in a temporary table, recognised in two
# queries (its identities against stored ones, and against each other) and the strangers are inserted, with
# their identities, by INSERT ... SELECT. Python touches each such row once, to stage it.
def _stage_columns() -> list[Column[Any]]:
    return [
        Column("idx", Integer, primary_key=True, autoincrement=False),
        Column("line", Integer),
        *(Column(name, _table.c[name].type) for name in FIELDS),
        Column("full_name", _table.c.full_name.type),
        Column("full_name_kana", _table.c.full_name_kana.type),
        Column("tags", JSONType),
        Column("opt_in", Boolean),
    ]


def _key_columns() -> list[Column[Any]]:
    return [
        Column("idx", Integer, nullable=False),
        Column("kind", String(32), nullable=False),
        Column("value", String(320), nullable=False),
    ]


_STAGE = scratch_table("kz_import_customers", Column("cid", Integer), *_stage_columns())
_STAGE_NAMES = [c.name for c in _STAGE.c]
# Clustered on the key (SQLite: WITHOUT ROWID), so every step that reads the keys does so in the order of the
# unique (kind, value) index of identities: look-ups and inserts walk neighbouring pages, and finding keys
# shared within the batch needs no sort (measured: 13% less time in SQL per row than a heap of keys).
_KEYS = scratch_table(
    "kz_import_customer_keys", *_key_columns(), PrimaryKeyConstraint("kind", "value", "idx"), sqlite_with_rowid=False
)
# A parser process's staged range (SQLite imports): the same rows in a file of their own, attached to the
# writer's connection as STAGED_SCHEMA for the batch.
_FILE_META = MetaData()
_FILE_ROWS = Table("rows", _FILE_META, *_stage_columns())
_ATTACHED = MetaData(schema=STAGED_SCHEMA)
_ATTACHED_ROWS = _FILE_ROWS.to_metadata(_ATTACHED)
_IN_CHUNK = 5000


def _stage_tuple(i: int, row: CustomerRow) -> tuple[Any, ...]:
    return (i, row.line, *row.fields, *row.names, row.tags or None, row.email_opt_in)


_SQLITE = sqlite_dialect()
_FILE_DDL = str(CreateTable(_FILE_ROWS).compile(dialect=_SQLITE))


def stage_rows(rows: list[CustomerRow], path: Path) -> None:
    """Write parsed rows and their identities to a new SQLite file (in a parser process, for the writer).

    Values are bound exactly as SQLAlchemy binds them for SQLite, so the writer copies them as they are.
    """
    connection = sqlite3.connect(path)
    try:
        # A scratch file read once and deleted: nothing to journal or sync.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(_FILE_DDL)
        names = [c.name for c in _FILE_ROWS.c]
        connection.executemany(
            *tuple_insert(_SQLITE, _FILE_ROWS, names, [_stage_tuple(i, r) for i, r in enumerate(rows)])
        )
        connection.commit()
    finally:
        connection.close()


def _insert_strangers(session: Session, batch: list[CustomerRow] | Staged, ctx: WriteContext) -> list[CustomerRow]:
    """Insert the rows whose identities match no stored customer and no other row of the batch; return the rest.

    What they get is what the full path gives a row that is a new person: a customer with the settings' time
    zone and locale, its identities, tags, and its e-mail consent answer as the first consent on record.
    ``batch`` is parsed rows, or a range a parser process staged in a file (attached as STAGED_SCHEMA).
    """
    connection = session.connection()
    reset_scratch(session, _STAGE, _KEYS)
    base = _first_ids(connection)
    s, k, stored = _STAGE.c, _KEYS.c, CustomerIdentity.__table__.c
    if isinstance(batch, Staged):
        f = _ATTACHED_ROWS.c
        cid = literal(None, Integer) if base is None else literal(base + 1) + f.idx
        connection.execute(insert(_STAGE).from_select(_STAGE_NAMES, select(cid, *(f[n] for n in _STAGE_NAMES[1:]))))
        total = batch.rows
    else:
        first = None if base is None else base + 1
        staged = [(None if first is None else first + i, *_stage_tuple(i, row)) for i, row in enumerate(batch)]
        insert_tuples(session, _STAGE, _STAGE_NAMES, staged)
        total = len(batch)
    # In key order, so the clustered keys table is filled by appending.
    keys = union_all(
        *(
            select(s.idx, literal(kind).label("kind"), s[kind].label("value")).where(s[kind].is_not(None))
            for kind in IDENTITY_FIELDS
        )
    ).subquery()
    ordered = select(keys.c.idx, keys.c.kind, keys.c.value).order_by(keys.c.kind, keys.c.value, keys.c.idx)
    connection.execute(insert(_KEYS).from_select(["idx", "kind", "value"], ordered))
    if connection.dialect.name == "postgresql":
        # A temporary table has no statistics; without them the planner may scan every stored identity.
        connection.execute(text(f"ANALYZE {_KEYS.name}"))
    shared = select(k.kind, k.value).group_by(k.kind, k.value).having(func.count() > 1).subquery()
    known_query = union(
        select(k.idx).join(CustomerIdentity.__table__, and_(stored.kind == k.kind, stored.value == k.value)),
        select(k.idx).join(shared, and_(shared.c.kind == k.kind, shared.c.value == k.value)),
    )
    known = sorted(connection.scalars(known_query))
    rest = [batch[i] for i in known] if isinstance(batch, list) else _staged_rows(connection, known)
    for chunk in chunked(known, _IN_CHUNK):
        connection.execute(delete(_STAGE).where(s.idx.in_(chunk)))
    fresh = total - len(known)
    if not fresh:
        return rest
    now = utcnow()
    if base is None:
        sequence = func.pg_get_serial_sequence(_table.name, "id")
        connection.execute(update(_STAGE).values(cid=func.nextval(sequence)))
    connection.execute(insert(_table).from_select(*_from_stage(now)))
    identities = (
        select(s.cid, k.kind, k.value, literal(now, UTCDateTime()))
        .join(_STAGE, s.idx == k.idx)
        # In index order: neighbouring keys land on the same pages of the unique (kind, value) index.
        .order_by(k.kind, k.value)
    )
    connection.execute(
        insert(CustomerIdentity.__table__).from_select(["customer_id", "kind", "value", "created_at"], identities)
    )
    extras = select(s.cid, s.line, s.tags, s.opt_in).where(or_(s.tags.is_not(None), s.opt_in.is_not(None)))
    people = [
        _Person(
            rows=[],
            tags=list(dict.fromkeys(tags or ())),
            opt_in=None if opt_in is None else (opt_in, line),
            customer_id=cid,
        )
        for cid, line, tags, opt_in in connection.execute(extras)
    ]
    if people:
        ctx.report.note("tags added", _add_tags(session, people))
        ctx.report.note("consents recorded", _record_consents(session, people, ctx, now))
    ctx.report.inserted += fresh
    return rest


def _staged_rows(connection: Any, indexes: list[int]) -> list[CustomerRow]:
    """Rows of the stage as parsed rows again, for the full path (the column types restore dates and dicts)."""
    s = _STAGE.c
    out: list[CustomerRow] = []
    for chunk in chunked(indexes, _IN_CHUNK):
        query = select(*(s[n] for n in _STAGE_NAMES[1:])).where(s.idx.in_(chunk)).order_by(s.idx)
        for _idx, line, *values in connection.execute(query):
            *fields, full, kana, tags, opt_in = values
            out.append(CustomerRow(line, tuple(fields), tags or None, opt_in, (full, kana)))
    return out


def _first_ids(connection: Any) -> int | None:
    """SQLite: the id before the batch's first stranger (the batch's row i gets it + 1 + i). PostgreSQL: None,
    its ids come from the table's sequence once the strangers are known.

    The batch holds SQLite's write lock (the runner begins it IMMEDIATE); should anyone else take one of these
    ids anyway, the primary key refuses the insert and the batch rolls back. Rows that turn out to be known
    leave their id unused: ids follow file order, with gaps.
    """
    if connection.dialect.name == "postgresql":
        return None
    return next_free_id(connection, _table) - 1


def _from_stage(now: dt.datetime) -> tuple[list[str], Any]:
    s = _STAGE.c
    settings = get_settings()
    copied = [name for name in FIELDS if name not in ("source", "attributes")]
    fixed: dict[str, Any] = {
        "source": func.coalesce(s.source, "import"),
        "attributes": func.coalesce(s.attributes, literal(_NO_ATTRIBUTES, JSONType)),
        "full_name": s.full_name,
        "full_name_kana": s.full_name_kana,
        "timezone": literal(settings.default_timezone),
        "locale": literal(settings.default_locale),
        "created_at": literal(now, UTCDateTime()),
        "updated_at": literal(now, UTCDateTime()),
        # The model's own defaults, so a stranger starts exactly as a customer created any other way.
        **{name: literal(_table.c[name].default.arg) for name in ("lifecycle_stage", "status", "version")},
    }
    names = ["id", *copied, *fixed]
    query = select(s.cid, *(s[name] for name in copied), *fixed.values()).order_by(s.cid)
    return names, query
