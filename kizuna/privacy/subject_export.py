"""Data-subject access export (GDPR art. 15, APPI 保有個人データの開示請求): everything Kizuna holds about one person.

What goes in is read from the metadata, not listed by hand, so a table added later is in the next export:

- **subject tables**: every table with a column that names the customer (``customer_id``, or any column with a
  foreign key to ``customers.id``: ``customers.id`` itself, ``customer_merges.survivor_id``,
  ``customer_duplicates.other_customer_id`` ...). Their rows where that column is the customer or one of the
  records merged into it.
- **child tables**: a table with no such column whose foreign key points at a row exported above (an order's
  lines would be one; today chat messages through their chat, journey steps through their run, a deal's stage
  changes through the deal), followed transitively.
- **context**: the rows those tables point at in other tables (the tag behind a tagging, the segment behind a
  membership, the product behind an order line), so that ids can be read; never staff accounts.

Left out on purpose, each with its reason: ``EXCLUDED_TABLES`` (whole tables), ``SECRET_COLUMNS`` (hashes, nonces,
credentials: the warehouse export's list plus our own), ``CONTEXT_EXCLUDED``. tests/privacy/test_subject_export.py
fails when a table that reaches a customer is in neither the export nor ``EXCLUDED_TABLES``, and when a column that
looks like a secret is exported.

The file is a ZIP: ``<table>.json`` per table (a JSON array of the stored rows, UTF-8 with the characters as
written, times in ISO 8601 UTC, money and decimals as strings), ``context/<table>.json``, ``manifest.json`` (when,
whom, which tables with how many rows, what was left out and why) and a README.txt in Japanese and English. JSON
because APPI and the GDPR ask for an electronic, commonly used, machine-readable form that a person can also open;
one file per table because a table's rows share their columns. Rows are read in batches and written to the ZIP as
they come, so a customer with 100,000 events never sits in memory whole.
"""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import Column, ColumnElement, Table, false, or_, select
from sqlalchemy.orm import Session

import kizuna.models  # noqa: F401  (every table on the metadata)
from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import Customer
from kizuna.customers.service import resolve_id
from kizuna.db import Base, utcnow
from kizuna.exports import tables as warehouse

PERMISSION = "customers:export_subject"
FORMAT_VERSION = 1
# Tables that reach a customer but are left out of the export whole, each with its reason.
EXCLUDED_TABLES: dict[str, str] = {
    "outbox_deliveries": "delivery bookkeeping of the outbox messages (which internal subscriber, attempts, locks); "
    "the messages themselves, with what they said about the person, are in outbox.json",
}
# Columns never exported: the warehouse export's secrets, and these (tokens that would let someone act as the
# person or link an account to them).
SECRET_COLUMNS: dict[str, frozenset[str]] = {
    **warehouse.SECRET_COLUMNS,
    "line_links": frozenset({"nonce"}),
}
# Columns whose name looks like a secret but that hold none (the guarding test reads this), with the reason.
NOT_SECRET: dict[str, dict[str, str]] = {
    "messages": {
        "key": "what the message was for (journey, step, campaign), not a credential",
        "delivery_key": "the Message-ID / retry key the message went out with; the person received it",
    },
    "survey_responses": {"send_key": "names the message that carried the survey link; the link itself is signed"},
    "webhook_deliveries": {"idempotency_key": "the delivery's id as sent to the receiving system"},
    "customers": {"name_key": "the search form of the person's name"},
    "journey_enrollments": {"entry_key": "which entry into the journey this run is (once, per day ...)"},
    "journeys": {"trigger_key": "the event name or segment that starts the journey"},
    "custom_fields": {"key": "the field's name in customers.attributes"},
}
# Tables pointed at by exported rows that are not shown as context, with the reason.
CONTEXT_EXCLUDED: dict[str, str] = {
    "users": "staff accounts: the person's data names them by id (owner, author); their accounts are not the "
    "person's data",
}
# Context that no foreign key reaches, by table: which rows to show.
EXTRA_CONTEXT: dict[str, Callable[[Table], ColumnElement[bool]]] = {
    # The definitions (label, type, choices) of the custom fields whose values are in customers.attributes.
    "custom_fields": lambda table: table.c.entity == "customer",
}
_BATCH = 2000


@dataclass(frozen=True)
class Part:
    """One table of the export: which rows (``where`` over the subject's ids) and why (``how``)."""

    table: Table
    how: str
    where: Callable[[list[int]], ColumnElement[bool]]


def _customers() -> Table:
    return Customer.__table__


def subject_columns(table: Table) -> list[Column[Any]]:
    """The columns of ``table`` that name a customer: ``customer_id`` and every foreign key to ``customers.id``."""
    customers = _customers()
    found = [c for c in table.columns if c.name == "customer_id"]
    if table is customers:
        found.append(customers.c.id)
    for fk in table.foreign_keys:
        if fk.column is customers.c.id and fk.parent not in found:
            found.append(fk.parent)
    return found


def _direct(columns: list[Column[Any]]) -> Callable[[list[int]], ColumnElement[bool]]:
    return lambda ids: or_(*[c.in_(ids) for c in columns])


def _through(links: list[tuple[Column[Any], Part, Column[Any]]]) -> Callable[[list[int]], ColumnElement[bool]]:
    """Rows whose foreign key points at an exported row of a parent part."""

    def where(ids: list[int]) -> ColumnElement[bool]:
        return or_(*[child.in_(select(target).where(parent.where(ids))) for child, parent, target in links])

    return where


def plan() -> dict[str, Part]:
    """Every table the export reads, by name, in the order the files are written (subject tables, then children)."""
    parts: dict[str, Part] = {}
    tables = [t for t in Base.metadata.sorted_tables if t.name not in EXCLUDED_TABLES]
    for table in tables:
        columns = subject_columns(table)
        if columns:
            parts[table.name] = Part(table, "by " + ", ".join(c.name for c in columns), _direct(columns))
    grown = True
    while grown:
        grown = False
        for table in tables:
            if table.name in parts:
                continue
            links = [
                (fk.parent, parts[fk.column.table.name], fk.column)
                for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)
                if fk.column.table.name in parts
            ]
            if links:
                how = "through " + ", ".join(f"{child.name} -> {parent.table.name}" for child, parent, _ in links)
                parts[table.name] = Part(table, how, _through(links))
                grown = True
    # The person's own row first, then the tables by name (the files' order in the ZIP and the manifest).
    return dict(sorted(parts.items(), key=lambda item: (item[0] != "customers", item[0])))


def context_plan(parts: dict[str, Part]) -> dict[str, list[tuple[Column[Any], Part, Column[Any]]]]:
    """Tables pointed at by exported rows, not themselves exported: table -> (its key, the pointing part, the fk)."""
    found: dict[str, list[tuple[Column[Any], Part, Column[Any]]]] = {}
    for part in parts.values():
        for fk in sorted(part.table.foreign_keys, key=lambda f: f.parent.name):
            target = fk.column.table
            if target.name in parts or target.name in CONTEXT_EXCLUDED or target.name in EXCLUDED_TABLES:
                continue
            found.setdefault(target.name, []).append((fk.column, part, fk.parent))
    return found


def exported_columns(table: Table) -> list[Column[Any]]:
    hidden = SECRET_COLUMNS.get(table.name, frozenset())
    return [c for c in table.columns if c.name not in hidden]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_default)
# Bytes gathered before one write into the ZIP entry: a write per row cost a quarter of the export's time.
_FLUSH_BYTES = 1 << 18


def _write_rows(zf: zipfile.ZipFile, name: str, rows: Iterator[dict[str, Any]]) -> int:
    """Write ``rows`` as one JSON array into the entry ``name``, a batch of rows at a time; returns the count."""
    count = 0
    pending: list[str] = ["["]
    size = 0
    with zf.open(name, "w", force_zip64=True) as entry:
        for row in rows:
            text = _ENCODER.encode(row)
            pending.append(",\n  " if count else "\n  ")
            pending.append(text)
            size += len(text)
            count += 1
            if size >= _FLUSH_BYTES:
                entry.write("".join(pending).encode("utf-8"))
                pending, size = [], 0
        pending.append("\n]\n" if count else "]\n")
        entry.write("".join(pending).encode("utf-8"))
    return count


def _read(session: Session, table: Table, where: ColumnElement[bool]) -> Iterator[dict[str, Any]]:
    columns = exported_columns(table)
    names = [c.name for c in columns]
    order = list(table.primary_key.columns) or columns[:1]
    query = select(*columns).where(where).order_by(*order).execution_options(yield_per=_BATCH)
    for row in session.execute(query):
        yield dict(zip(names, row, strict=True))


@dataclass
class SubjectExport:
    customer_id: int
    merged_ids: list[int]
    tables: dict[str, int]
    context: dict[str, int]
    file_name: str


def subject_ids(session: Session, customer_id: int) -> tuple[int, list[int]]:
    """The customer ``customer_id`` lives in today (following merges) and the ids merged into it."""
    survivor = resolve_id(session, customer_id)
    customers = _customers()
    merged = list(session.scalars(select(customers.c.id).where(customers.c.merged_into_id == survivor).order_by("id")))
    return survivor, merged


def write_subject_export(
    session: Session, *, actor: Actor, customer_id: int, out: IO[bytes], progress: Callable[[str], None] | None = None
) -> SubjectExport:
    """Write everything held about the customer (a merged id names its survivor) to ``out`` as a ZIP, and audit it.

    Reads in the caller's transaction and writes the audit entry there; does not commit.
    """
    require(actor, PERMISSION)
    survivor, merged = subject_ids(session, customer_id)
    ids = [survivor, *merged]
    generated_at = utcnow()
    parts = plan()
    counts: dict[str, int] = {}
    context_counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, part in parts.items():
            if progress:
                progress(name)
            counts[name] = _write_rows(zf, f"{name}.json", _read(session, part.table, part.where(ids)))
        for name, links in context_plan(parts).items():
            table = Base.metadata.tables[name]
            where = or_(false(), *[key.in_(select(fk).where(part.where(ids))) for key, part, fk in links])
            context_counts[name] = _write_rows(zf, f"context/{name}.json", _read(session, table, where))
        for name, rows_of in EXTRA_CONTEXT.items():
            table = Base.metadata.tables[name]
            context_counts[name] = _write_rows(zf, f"context/{name}.json", _read(session, table, rows_of(table)))
        manifest = _manifest(survivor, merged, generated_at, parts, counts, context_counts)
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        zf.writestr("README.txt", _readme(manifest))
    total = sum(counts.values())
    audit.record(
        session,
        actor=actor,
        action="privacy.subject_export",
        entity_type="customer",
        entity_id=survivor,
        customer_id=survivor,
        details={
            "requested_id": customer_id,
            "merged_ids": merged,
            "rows": total,
            "tables": {k: v for k, v in counts.items() if v},
        },
        summary=f"data-subject export of customer {survivor}: {total} rows",
    )
    stamp = generated_at.strftime("%Y%m%d-%H%M%S")
    return SubjectExport(survivor, merged, counts, context_counts, f"customer-{survivor}-data-{stamp}.zip")


def _manifest(
    survivor: int,
    merged: list[int],
    generated_at: dt.datetime,
    parts: dict[str, Part],
    counts: dict[str, int],
    context_counts: dict[str, int],
) -> dict[str, Any]:
    from kizuna import __version__

    return {
        "format": "kizuna-subject-export",
        "format_version": FORMAT_VERSION,
        "kizuna_version": __version__,
        "generated_at": generated_at.isoformat(),
        "customer_id": survivor,
        "merged_customer_ids": merged,
        "encoding": "UTF-8; one JSON array of rows per file; times ISO 8601 in UTC; decimals as strings",
        "tables": [
            {"name": name, "file": f"{name}.json", "rows": counts[name], "selected": part.how}
            for name, part in parts.items()
        ],
        "context": [{"name": name, "file": f"context/{name}.json", "rows": n} for name, n in context_counts.items()],
        "left_out": {
            "tables": EXCLUDED_TABLES,
            "columns": {t: sorted(c) for t, c in sorted(SECRET_COLUMNS.items()) if t in parts},
            "context": CONTEXT_EXCLUDED,
        },
    }


def _readme(manifest: dict[str, Any]) -> str:
    held = [t for t in manifest["tables"] if t["rows"]]
    lines = [
        "保有個人データの開示 / Personal data held by Kizuna",
        "",
        f"顧客ID / Customer id: {manifest['customer_id']}",
        f"統合された顧客ID / Records merged into it: {', '.join(map(str, manifest['merged_customer_ids'])) or '-'}",
        f"作成日時 (UTC) / Generated at (UTC): {manifest['generated_at']}",
        "",
        "各テーブルの行を1ファイルずつ JSON (UTF-8) で収めています。日時は UTC の ISO 8601、金額は文字列です。",
        "context/ には ID の意味 (タグ名、商品名、セグメント名など) を収めています。",
        "manifest.json に全テーブルの行数と、含めなかった項目 (パスワードやトークンのハッシュなど)",
        "とその理由があります。",
        "",
        "One JSON file (UTF-8) per table holds its rows; times are ISO 8601 in UTC, amounts are strings.",
        "context/ holds what ids refer to (tag names, products, segments ...).",
        "manifest.json lists every table with its row count, and what was left out (hashes of passwords and",
        "tokens ...) and why.",
        "",
        "データのあるテーブル / Tables with data:",
        *[f"  {t['file']}: {t['rows']}" for t in held],
        "",
    ]
    return "\n".join(lines)
