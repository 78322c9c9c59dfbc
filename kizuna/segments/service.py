"""Segments: create, change, delete, preview, refresh and read members and history.

A refresh computes the segment's set of customers and applies the difference to ``segment_memberships`` in the
caller's transaction, set-based (``membership.apply``), with one ``segment.entered`` / ``segment.exited`` outbox
message per changed customer, so all of it commits together or not at all.

Incremental refresh: the outbox is the change log (``changes.py``); a segment keeps the id of the last message
it has seen (``watermark``), and an incremental refresh writes the customers changed after it into a temporary
table and evaluates the rule for them alone, driven from that table. Rules that depend on the calendar
("within 30 days", "30 days ago") change their answer with no new data at all: an event falls out of the
window overnight. So a refresh is full (every customer) when the segment has had no full refresh since the
start of today in KIZUNA_DEFAULT_TIMEZONE; the daily full refresh also catches what an incremental one cannot
see (on PostgreSQL a message whose transaction commits after a later id was read as the watermark).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Select,
    delete,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.filters import CUSTOMER_FILTERS
from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.fields import registry as field_registry
from kizuna.normalize import normalize_email
from kizuna.outbox.models import OutboxMessage
from kizuna.segments import changes, membership, rules
from kizuna.segments import compile as compiler
from kizuna.segments.models import Segment, SegmentMembership
from kizuna.segments.schemas import SegmentCreate, SegmentUpdate

ENTERED = changes.ENTERED
EXITED = changes.EXITED
# Candidates above which an incremental refresh evaluates every customer instead (a cold metrics run rewrites
# every row, and then every customer is a candidate). Measured on the 1M-customer benchmark (2 shared cores):
# 10,000 candidates take 0.13-0.22 s on SQLite and about 0.3 s on PostgreSQL, a full evaluation of the same
# three-condition rule 0.4-1.5 s, so they meet at a few tens of thousands of candidates.
FULL_ABOVE = 50_000
PREVIEW_SAMPLE = 10
# Ids per statement when resolving a CSV (well under SQLite's bound-parameter limit).
_BATCH = 5000


@dataclass(frozen=True)
class RefreshResult:
    segment_id: int
    mode: str  # initial | full | incremental | static
    entered: int
    exited: int
    member_count: int
    evaluated: int | None  # customers re-evaluated by an incremental refresh (None: all)
    seconds: float


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Customer]


# --- reading ------------------------------------------------------------------------------------------------


def get_segment(session: Session, segment_id: int, *, actor: Actor) -> Segment:
    require(actor, "segments:read")
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found", key="error.segment_not_found", params={"id": segment_id})
    return segment


def list_segments(session: Session, *, actor: Actor) -> list[Segment]:
    require(actor, "segments:read")
    return list(session.scalars(select(Segment).order_by(Segment.name, Segment.id)))


def members(
    session: Session, segment_id: int, *, actor: Actor, after: int = 0, limit: int = 50
) -> tuple[list[Customer], int | None]:
    """Current members in id order after customer id ``after``: (page, next ``after`` or None)."""
    get_segment(session, segment_id, actor=actor)
    require(actor, "customers:read")
    ids = select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == segment_id,
        SegmentMembership.exited_at.is_(None),
        SegmentMembership.customer_id > after,
    )
    rows = list(session.scalars(select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def history(
    session: Session, segment_id: int, *, actor: Actor, limit: int = 100
) -> list[tuple[SegmentMembership, Customer]]:
    """The newest entries and exits (each membership row, with its customer), newest first."""
    get_segment(session, segment_id, actor=actor)
    require(actor, "customers:read")
    moved = func.coalesce(SegmentMembership.exited_at, SegmentMembership.entered_at)
    query = (
        select(SegmentMembership, Customer)
        .join(Customer, Customer.id == SegmentMembership.customer_id)
        .where(SegmentMembership.segment_id == segment_id)
        .order_by(moved.desc(), SegmentMembership.id.desc())
        .limit(limit)
    )
    return [(m, c) for m, c in session.execute(query)]


def preview(session: Session, rule: Any, *, actor: Actor, sample: int = PREVIEW_SAMPLE) -> Preview:
    """How many active customers a rule selects now, and the first few of them, without saving anything."""
    require(actor, "segments:read")
    require(actor, "customers:read")
    parsed = rules.parse_rule(rule)
    compiler.check_references(session, parsed)
    ids = compiler.matching(parsed)
    count = session.scalar(select(func.count()).select_from(ids.subquery())) or 0
    first = list(session.scalars(select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id).limit(sample)))
    return Preview(count=int(count), sample=first)


# --- writing ------------------------------------------------------------------------------------------------


def _check_name(session: Session, name: str, *, segment_id: int | None = None) -> None:
    taken = session.scalar(select(Segment.id).where(Segment.name == name, Segment.id != (segment_id or 0)))
    if taken is not None:
        raise Conflict(
            f"a segment named '{name}' already exists",
            field="name",
            key="error.segment_name_taken",
            params={"name": name},
        )


def create_segment(session: Session, *, actor: Actor, data: SegmentCreate) -> Segment:
    """A dynamic segment (``rule``) or an empty static list (fill it with ``build_static``). Not yet refreshed:
    call ``refresh`` (the edges do, so a new segment shows its members at once)."""
    require(actor, "segments:write")
    _check_name(session, data.name)
    stored: dict[str, Any] | None = None
    if data.kind == "dynamic":
        if data.rule is None:
            raise ValidationError("a dynamic segment needs a rule", field="rule", key="error.segment_rule_required")
        parsed = rules.parse_rule(data.rule)
        compiler.check_references(session, parsed)
        stored = rules.dump_rule(parsed)
    elif data.rule is not None:
        raise ValidationError("a static segment has no rule; give its members instead", field="rule")
    segment = Segment(
        name=data.name,
        description=data.description,
        kind=data.kind,
        rule=stored,
        source={},
        member_count=0,
        watermark=0,
        created_by=actor.user_id,
    )
    session.add(segment)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="segment.create",
        entity_type="segment",
        entity_id=segment.id,
        summary=segment.name,
        details={"kind": data.kind, "rule": stored},
    )
    return segment


def update_segment(session: Session, segment_id: int, *, actor: Actor, data: SegmentUpdate) -> Segment:
    """Rename, describe or change the rule; a changed rule is applied by the next (full) refresh."""
    require(actor, "segments:write")
    segment = get_segment(session, segment_id, actor=actor)
    before = {"name": segment.name, "description": segment.description, "rule": segment.rule}
    if data.name is not None and data.name != segment.name:
        _check_name(session, data.name, segment_id=segment.id)
        segment.name = data.name
    if data.description is not None:
        segment.description = data.description
    if data.rule is not None:
        if segment.kind != "dynamic":
            raise ValidationError("a static segment has no rule", field="rule")
        parsed = rules.parse_rule(data.rule)
        compiler.check_references(session, parsed, segment_id=segment.id)
        segment.rule = rules.dump_rule(parsed)
        # The old rule's members were never checked against the new one: the next refresh looks at everyone.
        segment.full_refreshed_at = None
    after = {"name": segment.name, "description": segment.description, "rule": segment.rule}
    diff = audit.changes(before, after)
    if diff:
        audit.record(
            session, actor=actor, action="segment.update", entity_type="segment", entity_id=segment.id, details=diff
        )
    return segment


def delete_segment(session: Session, segment_id: int, *, actor: Actor) -> None:
    require(actor, "segments:write")
    segment = get_segment(session, segment_id, actor=actor)
    users = [
        s.id
        for s in session.scalars(select(Segment).where(Segment.kind == "dynamic", Segment.id != segment_id))
        if s.rule and segment_id in rules.referenced_segments(rules.parse_rule(s.rule))
    ]
    if users:
        raise Conflict(
            f"segment {segment_id} is used by the rule of segment(s) {', '.join(map(str, users))}",
            key="error.segment_in_use",
            params={"id": segment_id, "users": ", ".join(map(str, users))},
        )
    session.execute(delete(SegmentMembership).where(SegmentMembership.segment_id == segment_id))
    session.delete(segment)
    audit.record(
        session, actor=actor, action="segment.delete", entity_type="segment", entity_id=segment_id, summary=segment.name
    )


# --- refresh ------------------------------------------------------------------------------------------------


def needs_full(segment: Segment, *, now: dt.datetime | None = None) -> bool:
    """Whether the next refresh must look at every customer: never fully refreshed, or not since the start of
    today (KIZUNA_DEFAULT_TIMEZONE): a rule about "the last 30 days" changes overnight without new data."""
    if segment.full_refreshed_at is None:
        return True
    now = now or utcnow()
    local_today = now.astimezone(compiler.zone()).date()
    return segment.full_refreshed_at < compiler.day_start(local_today)


def refresh(session: Session, segment_id: int, *, actor: Actor, full: bool | None = None) -> RefreshResult:
    """Bring a dynamic segment's members up to date (``full``: every customer; None: incremental unless a full
    refresh is due, see ``needs_full``); records entries, exits, their outbox messages, ``refreshed_at`` and
    ``member_count``. The caller commits. An incremental refresh with more than ``FULL_ABOVE`` candidates, or
    one that ``changes.since`` says only a full refresh can answer, is done (and reported) as a full one."""
    require(actor, "segments:write")
    started = time.perf_counter()
    segment = membership.lock(session, segment_id)
    if segment.kind != "dynamic" or not segment.rule:
        raise ValidationError(
            f"segment {segment_id} is a static list: it has no rule to refresh", key="error.segment_static_refresh"
        )
    rule = rules.parse_rule(segment.rule)
    field_registry.use(session)  # a rule on attributes.<key> reads its custom field's type
    now = utcnow()
    connection = session.connection()
    # The watermark is read before the customers are: a change committed meanwhile is seen next time.
    watermark = int(session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0))) or 0)
    initial = segment.refreshed_at is None
    if full is None:
        full = needs_full(segment, now=now)
    evaluated = None
    if not full:
        changed = changes.since(connection, segment.watermark, rule)
        full = changed.everyone
    if not full:
        evaluated = changes.write_candidates(connection, segment.watermark, rule, changed, limit=FULL_ABOVE + 1)
        if evaluated > FULL_ABOVE:
            changes.drop_candidates(connection)
            full, evaluated = True, None
    mode = "initial" if initial else ("full" if full else "incremental")

    def fill(connection: Connection) -> None:
        source = compiler.matching(rule) if full else changes.matching(rule)
        connection.execute(insert(membership.matches).from_select(["customer_id"], source))

    try:
        entered, exited = (
            (0, 0)
            if evaluated == 0
            else membership.apply(session, segment, fill, now=now, incremental=not full, mode=mode)
        )
    finally:
        if not full:
            changes.drop_candidates(connection)
    segment.watermark = max(watermark, segment.watermark)
    segment.refreshed_at = now
    if full:
        segment.full_refreshed_at = now
    # Counted every time: a deleted customer's stays go with them (ON DELETE CASCADE), without an exit.
    segment.member_count = membership.count(session, segment.id)
    session.flush()
    return RefreshResult(
        segment.id, mode, entered, exited, segment.member_count, evaluated, round(time.perf_counter() - started, 3)
    )


def refresh_due(session_factory: Callable[[], Session], *, actor: Actor) -> tuple[list[RefreshResult], list[str]]:
    """Refresh every dynamic segment, each in its own transaction, a segment that a rule names before the rule's
    own (so ``{"segment": 3}`` reads segment 3 as refreshed in the same round): (results, errors)."""
    with session_factory() as session:
        segments = {s.id: s.rule for s in session.scalars(select(Segment).where(Segment.kind == "dynamic"))}
    order: list[int] = []
    seen: set[int] = set()

    def visit(segment_id: int) -> None:
        if segment_id in seen or segment_id not in segments:
            return
        seen.add(segment_id)
        rule = segments[segment_id]
        for ref in rules.referenced_segments(rules.parse_rule(rule)) if rule else []:
            visit(ref)
        order.append(segment_id)

    for segment_id in sorted(segments):
        visit(segment_id)
    results: list[RefreshResult] = []
    errors: list[str] = []
    for segment_id in order:
        session = session_factory()
        try:
            results.append(refresh(session, segment_id, actor=actor))
            session.commit()
        except Exception as exc:  # noqa: BLE001 - one broken segment must not stop the others' refresh
            session.rollback()
            errors.append(f"segment {segment_id}: {exc}")
        finally:
            session.close()
    return results, errors


# --- static lists -------------------------------------------------------------------------------------------


def build_static(
    session: Session,
    segment_id: int,
    *,
    actor: Actor,
    customer_ids: Select[Any] | Sequence[int],
    source: Mapping[str, Any],
) -> RefreshResult:
    """Set a static list's members to the active customers among ``customer_ids`` (a select of ids, or ids)."""
    require(actor, "segments:write")
    started = time.perf_counter()
    segment = membership.lock(session, segment_id)
    if segment.kind != "static":
        raise ValidationError(f"segment {segment_id} is dynamic: its rule decides its members")
    now = utcnow()

    def fill(connection: Connection) -> None:
        if isinstance(customer_ids, Select):
            active = select(Customer.id).where(Customer.status == "active", Customer.id.in_(customer_ids))
            connection.execute(insert(membership.matches).from_select(["customer_id"], active))
            return
        # A list (a CSV's ids): written as rows, then the ones that are not active customers are dropped.
        unique = sorted(set(customer_ids))
        for start in range(0, len(unique), _BATCH):
            connection.execute(insert(membership.matches), [{"customer_id": i} for i in unique[start : start + _BATCH]])
        connection.execute(
            delete(membership.matches).where(
                ~exists().where(Customer.id == membership.matches.c.customer_id, Customer.status == "active")
            )
        )

    entered, exited = membership.apply(session, segment, fill, now=now, incremental=False, mode="static")
    segment.source = dict(source)
    segment.refreshed_at = segment.full_refreshed_at = now
    segment.member_count = membership.count(session, segment.id)
    audit.record(
        session,
        actor=actor,
        action="segment.build",
        entity_type="segment",
        entity_id=segment.id,
        details={"source": dict(source), "entered": entered, "exited": exited},
    )
    session.flush()
    return RefreshResult(
        segment.id, "static", entered, exited, segment.member_count, None, round(time.perf_counter() - started, 3)
    )


@dataclass(frozen=True)
class CsvMatch:
    ids: list[int]
    unmatched: list[str]


def resolve_csv(session: Session, text: str) -> CsvMatch:
    """Customer ids from a CSV of ids or e-mails: one per row in the first column, or in a column named
    ``id``, ``customer_id`` or ``email`` (a header row is recognised by those names)."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        return CsvMatch([], [])
    header = [h.strip().lower() for h in rows[0]]
    column = next((header.index(n) for n in ("customer_id", "id", "email") if n in header), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    values = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    ids: set[int] = set()
    wanted_ids: dict[int, str] = {}
    emails: dict[str, str] = {}
    unmatched: list[str] = []
    for value in values:
        if value.lstrip("#").isdigit() and len(value) < 11:
            wanted_ids[int(value.lstrip("#"))] = value
        elif "@" in value:
            try:
                emails[normalize_email(value) or value] = value
            except Exception:  # noqa: BLE001 - a malformed address is reported as unmatched
                unmatched.append(value)
        else:
            unmatched.append(value)
    keys = sorted(wanted_ids)
    for start in range(0, len(keys), _BATCH):
        ids.update(session.scalars(select(Customer.id).where(Customer.id.in_(keys[start : start + _BATCH]))))
    unmatched.extend(v for k, v in wanted_ids.items() if k not in ids)
    addresses = sorted(emails)
    found_emails: set[str] = set()
    for start in range(0, len(addresses), _BATCH):
        for customer_id, email in session.execute(
            select(Customer.id, Customer.email).where(
                Customer.email.in_(addresses[start : start + _BATCH]), Customer.status == "active"
            )
        ):
            ids.add(customer_id)
            found_emails.add(email)
    unmatched.extend(v for k, v in emails.items() if k not in found_emails)
    return CsvMatch(sorted(ids), unmatched)


def snapshot_of_segment(session: Session, source_id: int, *, actor: Actor) -> Select[Any]:
    """The current members of another segment, as a select of ids."""
    get_segment(session, source_id, actor=actor)
    return select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == source_id, SegmentMembership.exited_at.is_(None)
    )


def snapshot_of_filter(params: Mapping[str, Any]) -> Select[Any]:
    """The customers a customer-list filter (``CUSTOMER_FILTERS`` parameters) shows now, as a select of ids."""
    return CUSTOMER_FILTERS.apply(select(Customer.id), params, by_ids=True)
