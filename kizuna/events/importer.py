"""Importing touchpoint events from CSV or JSON Lines; events are append-only, so a known one is left alone.

An event without an external id gets a stable one derived from its content (``h:`` + SHA-1), which is what
makes importing the same file twice add nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pydantic
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from kizuna.customers.references import (
    CUSTOMER_REFS,
    REFERENCE_ALIASES,
    describe_missing,
    parse_customer_ref,
    resolve_customers,
)
from kizuna.db import utcnow
from kizuna.events.models import Event
from kizuna.events.schemas import EventCreate
from kizuna.imports.importer import (
    ImportOptions,
    PlainImporter,
    RowRejected,
    Warn,
    WriteContext,
    chunked,
    errors_from,
    field_error,
    ignore_warning,
)
from kizuna.imports.reader import Columns, Record
from kizuna.imports.report import Reason
from kizuna.imports.values import nfkc, parse_datetime
from kizuna.outbox.service import emit_rows, json_object

ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("イベントID", "event id"),
    **REFERENCE_ALIASES,
    "anonymous_id": ("匿名ID", "anonymous id", "cookie id", "visitor id"),
    "type": ("イベント", "イベント種別", "種別", "event", "event type", "action"),
    "channel": ("チャネル", "チャンネル", "経路"),
    "occurred_at": ("日時", "発生日時", "時刻", "timestamp", "time", "date", "occurred"),
    "source": ("ソース", "取得元"),
    "properties": ("プロパティ", "props", "data", "詳細"),
}
COLUMNS = Columns(
    aliases=ALIASES,
    required=[("type",), ("channel",), ("occurred_at",), (*CUSTOMER_REFS, "anonymous_id")],
)
# Columns of Kizuna's own events export that describe the stored record, not the event: never properties.
_BOOKKEEPING = frozenset({"id", "received_at"})
_CHANNELS = {
    "ウェブ": "web",
    "web": "web",
    "サイト": "web",
    "メール": "email",
    "mail": "email",
    "店舗": "store",
    "店頭": "store",
    "電話": "call",
    "phone": "call",
    "アプリ": "app",
    "ライン": "line",
}


@dataclass(slots=True)
class EventRow:
    line: int
    external_id: str
    customer: tuple[str, Any] | None
    values: dict[str, Any]
    # The id is derived from the content (the file gave none).
    derived: bool = False


class EventImporter(PlainImporter):
    kind = "events"
    columns = COLUMNS

    def keeps_extras(self, options: ImportOptions) -> bool:
        # Columns that name no field are the event's properties.
        return True

    def parse(self, record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> EventRow:
        raw = record.values
        errors: list[tuple[str, Reason]] = []
        customer = None
        try:
            customer = parse_customer_ref(raw)
        except RowRejected as exc:
            errors.extend(exc.errors)
        if customer is None and not errors and "anonymous_id" not in raw:
            reason = Reason(
                "customer_external_id: the row names no customer or anonymous_id", "error.import_no_customer_or_visitor"
            )
            errors.append(("customer_external_id", reason))
        values: dict[str, Any] = {}
        for name in ("type", "channel", "anonymous_id", "source"):
            if name in raw:
                values[name] = nfkc(raw[name])
        if "channel" in values:
            values["channel"] = _CHANNELS.get(values["channel"].casefold(), values["channel"].casefold())
        if "occurred_at" in raw:
            try:
                values["occurred_at"] = parse_datetime(raw["occurred_at"])
            except ValueError as exc:
                errors.append(field_error("occurred_at", exc))
        else:
            errors.append(("occurred_at", Reason("occurred_at: empty", "error.import_empty")))
        properties: dict[str, Any] = {}
        if "properties" in raw:
            props = raw["properties"]
            try:
                props = json.loads(props) if isinstance(props, str) else props
                if not isinstance(props, dict):
                    raise ValueError("must be a JSON object")
                properties.update(props)
            except (ValueError, RecursionError) as exc:
                errors.append(
                    field_error("properties", Reason(f"not a JSON object ({exc})", "error.import_not_json_object"))
                )
        properties.update((k.strip(), v) for k, v in record.extras.items() if k.strip() not in _BOOKKEEPING)
        values["properties"] = properties
        if errors:
            raise RowRejected(errors)
        if "external_id" in raw:
            return EventRow(record.line, nfkc(raw["external_id"]), customer, values)
        return EventRow(record.line, _content_id(customer, values), customer, values, derived=True)

    def preview_values(self, parsed: EventRow) -> dict[str, Any]:
        shown: dict[str, Any] = {} if parsed.derived else {"external_id": parsed.external_id}
        if parsed.customer is not None:
            shown[parsed.customer[0]] = parsed.customer[1]
        shown.update(parsed.values)
        return {k: v for k, v in shown.items() if v not in (None, {})}

    def write(self, session: Session, rows: list[EventRow], ctx: WriteContext) -> None:
        report = ctx.report
        customers = resolve_customers(session, {r.customer for r in rows if r.customer is not None})
        known: set[str] = set()
        for chunk in chunked(list({r.external_id for r in rows}), 5000):
            known.update(session.scalars(select(Event.external_id).where(Event.external_id.in_(chunk))))
        same_content = _stored_without_id(
            session, [r for r in rows if r.derived and r.external_id not in known], customers
        )
        now = utcnow()
        new: list[dict[str, Any]] = []
        in_batch: set[str] = set()
        for row in rows:
            # Events are never edited: one seen before (stored, or earlier in this batch) is left as it is.
            if row.external_id in in_batch:
                report.duplicates += 1
                continue
            if row.external_id in known:
                report.unchanged += 1
                continue
            customer_id = None
            if row.customer is not None:
                customer_id = customers.get(row.customer)
                if customer_id is None:
                    report.reject(row.line, *describe_missing(row.customer))
                    continue
            if row.derived and _content_key(customer_id, row.values) in same_content:
                # Stored without an external id (through the API) and exported: the same event, not a new one.
                report.unchanged += 1
                continue
            try:
                data = EventCreate(external_id=row.external_id, customer_id=customer_id, **row.values)
            except pydantic.ValidationError as exc:
                for name, reason in errors_from(exc):
                    report.reject(row.line, name, reason)
                continue
            values = data.model_dump()
            values["source"] = values["source"] or "import"
            values["received_at"] = now
            new.append(values)
            in_batch.add(row.external_id)
        if new:
            before = session.scalar(select(func.coalesce(func.max(Event.id), 0)))
            session.execute(insert(Event.__table__), new)
            # The same event.recorded the API emits, read back from the rows this batch wrote.
            emit_rows(
                session,
                "event.recorded",
                select(
                    json_object(
                        session, {"event_id": Event.id, "customer_id": Event.customer_id, "type": Event.type}
                    ).label("payload"),
                    Event.customer_id.label("customer_id"),
                    Event.occurred_at.label("occurred_at"),
                ).where(Event.id > before, Event.received_at == now),
                origin=ctx.actor.origin,
            )
        report.inserted += len(new)


IMPORTER = EventImporter()


def _content_id(customer: tuple[str, Any] | None, values: dict[str, Any]) -> str:
    """``h:`` + SHA-1 of the event's canonical content: the same row always yields the same id."""
    occurred: dt.datetime = values["occurred_at"]
    canonical = json.dumps(
        [list(customer) if customer else None, values.get("anonymous_id"), values.get("type"), values.get("channel"),
         occurred.isoformat(), values.get("properties", {})],
        sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"),
    )  # fmt: skip
    return "h:" + hashlib.sha1(canonical.encode(), usedforsecurity=False).hexdigest()


def _content_key(customer_id: int | None, values: dict[str, Any]) -> str:
    occurred: dt.datetime = values["occurred_at"]
    return json.dumps(
        [customer_id, values.get("anonymous_id"), values.get("type"), values.get("channel"),
         occurred.astimezone(dt.UTC).isoformat(), values.get("properties") or {}],
        sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"),
    )  # fmt: skip


def _stored_without_id(session: Session, rows: list[EventRow], customers: dict[tuple[str, Any], int]) -> set[str]:
    """Content keys of stored events without an external id, of the people and time span of ``rows``."""
    if not rows:
        return set()
    times = [r.values["occurred_at"] for r in rows]
    people = sorted({customers[r.customer] for r in rows if r.customer in customers})
    visitors = sorted({r.values["anonymous_id"] for r in rows if r.customer is None and "anonymous_id" in r.values})
    columns = (Event.customer_id, Event.anonymous_id, Event.type, Event.channel, Event.occurred_at, Event.properties)
    span = (Event.external_id.is_(None), Event.occurred_at.between(min(times), max(times)))
    found: set[str] = set()
    for column, keys in ((Event.customer_id, people), (Event.anonymous_id, visitors)):
        for chunk in chunked(keys, 5000):
            for customer_id, anonymous_id, type_, channel, occurred_at, properties in session.execute(
                select(*columns).where(*span, column.in_(chunk))
            ):
                values = {"anonymous_id": anonymous_id, "type": type_, "channel": channel, "occurred_at": occurred_at}
                found.add(_content_key(customer_id, {**values, "properties": properties}))
    return found
