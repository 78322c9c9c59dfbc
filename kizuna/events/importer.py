"""Importing touchpoint events from CSV or JSON Lines; events are append-only, so a known one is left alone.

An event without an external id gets a stable one derived from its content (``h:`` + SHA-1), which is what
makes importing the same file twice add nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pydantic
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kizuna.db import utcnow
from kizuna.events.models import Event
from kizuna.events.schemas import EventCreate
from kizuna.imports.importer import ImportOptions, RowRejected, WriteContext, chunked, errors_from, field_error
from kizuna.imports.reader import Columns, Record
from kizuna.imports.values import nfkc, parse_datetime
from kizuna.orders.importer import CUSTOMER_REFS, parse_customer_ref, resolve_customers

ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("イベントID", "event id"),
    "customer_external_id": ("顧客ID", "顧客番号", "顧客コード", "会員ID", "会員番号", "customer id", "member id"),
    "customer_email": ("メールアドレス", "メール", "email", "e-mail", "customer email"),
    "customer_id": ("kizuna customer id", "kizuna id"),
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


class EventImporter:
    kind = "events"
    columns = COLUMNS
    parallel = False

    def parse(self, record: Record, options: ImportOptions) -> EventRow:
        raw = record.values
        errors: list[tuple[str, str]] = []
        customer = None
        try:
            customer = parse_customer_ref(raw)
        except RowRejected as exc:
            errors.extend(exc.errors)
        if customer is None and not errors and "anonymous_id" not in raw:
            errors.append(("customer_external_id", "customer_external_id: the row names no customer or anonymous_id"))
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
            errors.append(("occurred_at", "occurred_at: empty"))
        properties: dict[str, Any] = {}
        if "properties" in raw:
            props = raw["properties"]
            try:
                props = json.loads(props) if isinstance(props, str) else props
                if not isinstance(props, dict):
                    raise ValueError("must be a JSON object")
                properties.update(props)
            except (ValueError, RecursionError) as exc:
                errors.append(field_error("properties", f"not a JSON object ({exc})"))
        properties.update((k.strip(), v) for k, v in record.extras.items())
        values["properties"] = properties
        if errors:
            raise RowRejected(errors)
        external_id = nfkc(raw["external_id"]) if "external_id" in raw else _content_id(customer, values)
        return EventRow(record.line, external_id, customer, values)

    def batches(self, rows: Iterable[EventRow], size: int) -> Iterator[list[EventRow]]:
        return chunked(rows, size)

    def write(self, session: Session, rows: list[EventRow], ctx: WriteContext) -> None:
        report = ctx.report
        customers = resolve_customers(session, {r.customer for r in rows if r.customer is not None})
        known: set[str] = set()
        for chunk in chunked(list({r.external_id for r in rows}), 5000):
            known.update(session.scalars(select(Event.external_id).where(Event.external_id.in_(chunk))))
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
                    kind, value = row.customer
                    report.reject(
                        row.line, kind, f"{kind}: no customer with {kind.removeprefix('customer_')} '{value}'"
                    )
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
            session.execute(insert(Event.__table__), new)
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
