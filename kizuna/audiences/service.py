"""Exporting a segment as an ad platform's audience file, and recording the hand-over (APPI).

Who is in the file: the segment's current members who are active customers (never merged, anonymous or deleted
records) and whose consent for the ``advertising`` purpose is in force (``consent.granted_for_purpose``), and who
have something the platform can match. E-mails, phones and names are only ever written hashed; country and
postal code go in clear where the platform's format asks for them (Google). Every customer written gets one
third-party provision record naming exactly the fields handed over, in the same transaction as the export's
audit entry: the caller commits, and a failed export leaves neither.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.audiences.formats import PLATFORMS, Person, Platform
from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers import consent
from kizuna.customers.models import Customer
from kizuna.errors import NotFound, ValidationError
from kizuna.exports.service import neutralize
from kizuna.privacy.service import record_provisions
from kizuna.segments.models import Segment, SegmentMembership

MEDIA_TYPE = "text/csv; charset=utf-8"
VIA = "audience_export"
_BATCH = 2000


@dataclass
class AudienceResult:
    segment_id: int
    platform: str
    members: int = 0
    without_consent: int = 0
    without_identifier: int = 0
    rows: int = 0
    # A download name: audience-<segment id>-<platform>.csv (ASCII, whatever the segment is called).
    file_name: str = ""
    # Field set -> customers given exactly those fields (what the provision records say).
    fields: dict[tuple[str, ...], list[int]] = field(default_factory=dict)


def platform_for(name: str) -> Platform:
    platform = PLATFORMS.get((name or "").strip().lower())
    if platform is None:
        raise ValidationError(
            f"unknown ad platform '{name}'; choose one of {', '.join(PLATFORMS)}",
            field="platform",
            key="error.audience_platform",
            params={"platform": name, "choices": ", ".join(PLATFORMS)},
        )
    return platform


def find_segment(session: Session, ref: str | int, *, actor: Actor) -> Segment:
    """A segment by id or by exact name (the CLI's ``--segment``)."""
    require(actor, "segments:read")
    text = str(ref).strip()
    segment = session.get(Segment, int(text)) if text.isdigit() else None
    if segment is None:
        segment = session.scalar(select(Segment).where(Segment.name == text))
    if segment is None:
        raise NotFound(f"segment '{text}' not found", key="error.segment_not_found", params={"id": text})
    return segment


_COLUMNS = (
    Customer.id,
    Customer.email,
    Customer.phone,
    Customer.family_name,
    Customer.given_name,
    Customer.city,
    Customer.prefecture,
    Customer.postal_code,
    Customer.country,
)


def _person(customer: Any, default_country: str) -> Person:
    country = customer.country or (default_country if customer.postal_code else None)
    return Person(
        email=customer.email,
        phone=customer.phone,
        family_name=customer.family_name,
        given_name=customer.given_name,
        city=customer.city,
        prefecture=customer.prefecture,
        postal_code=customer.postal_code,
        country=country,
    )


def write_audience(
    session: Session,
    *,
    actor: Actor,
    segment_id: int,
    platform: str,
    out: IO[bytes],
    progress: Callable[[int], None] | None = None,
) -> AudienceResult:
    """Write the segment's audience file for ``platform`` (google or meta) to ``out``, record each customer's
    provision and audit the export. The caller commits (and only then should the file leave Kizuna)."""
    spec = platform_for(platform)
    require(actor, "customers:read")
    require(actor, "data:export")
    require(actor, "segments:read")
    segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(f"segment {segment_id} not found", key="error.segment_not_found", params={"id": segment_id})
    result = AudienceResult(
        segment_id=segment.id, platform=spec.name, file_name=f"audience-{segment.id}-{spec.name}.csv"
    )
    current = select(SegmentMembership.customer_id).where(
        SegmentMembership.segment_id == segment.id, SegmentMembership.exited_at.is_(None)
    )
    members = select(Customer.id).where(Customer.id.in_(current), Customer.status == "active")
    result.members = session.scalar(select(func.count()).select_from(members.subquery())) or 0
    # Columns, not Customer objects: an entity would also load its tags and company for every row.
    consenting = (
        select(*_COLUMNS)
        .where(Customer.id.in_(current), Customer.status == "active")
        .where(consent.granted_for_purpose(Customer.id, purpose=consent.ADVERTISING))
        .order_by(Customer.id)
    )
    default_country = get_settings().default_region
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(spec.headers)
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    consented = 0
    for customer in session.execute(consenting.execution_options(yield_per=_BATCH)):
        consented += 1
        row = spec.row(_person(customer, default_country))
        if row is None:
            result.without_identifier += 1
            continue
        # Clear columns (country, zip) come from stored data: a stored value that starts like a formula must not
        # run in the spreadsheet someone opens the file with. Hashes never start that way.
        writer.writerow([neutralize(row.get(h, "")) for h in spec.headers])
        groups[tuple(spec.fields(row))].append(customer.id)
        result.rows += 1
        if progress and result.rows % 1000 == 0:
            progress(result.rows)
    text.flush()
    text.detach()
    result.without_consent = result.members - consented
    result.fields = dict(groups)
    reference = f"segment:{segment.id}:{spec.name}"
    for names, ids in groups.items():
        record_provisions(
            session,
            customer_ids=ids,
            recipient=spec.recipient,
            fields=list(names),
            via=VIA,
            purpose=consent.ADVERTISING,
            actor=actor.label,
            reference=reference,
        )
    audit.record(
        session,
        actor=actor,
        action="export.audience",
        entity_type="segment",
        entity_id=segment.id,
        details={
            "platform": spec.name,
            "recipient": spec.recipient,
            "members": result.members,
            "rows": result.rows,
            "without_consent": result.without_consent,
            "without_identifier": result.without_identifier,
            "personal_data": True,
        },
        summary=f"audience of segment {segment.name} for {spec.name}: {result.rows} customers",
    )
    return result
