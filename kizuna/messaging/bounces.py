"""Bounces and complaints reported by the mail server, an ESP's webhook or a feedback loop, and the complaint rate.

A hard bounce suppresses the address (nothing more is sent to it, of either kind); a soft one (mailbox full, server
busy) is recorded, and ``SOFT_BOUNCE_LIMIT`` of them on different mails in a row, with no open or click since the
first, suppress the address as ``soft_bounces``: a mailbox that keeps refusing is as good as gone, and mailing it
on hurts the sender's reputation (mailbox providers count such mails).
A complaint (the recipient marked the mail as spam) suppresses the address and withdraws the customer's marketing
consent. The complaint rate of a campaign or journey is computed from its messages: at 0.1% it warns, at 0.3%
sending should pause (the Gmail and Yahoo bulk-sender thresholds); campaigns call ``complaint_rate``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.messaging import service, tracking
from kizuna.messaging.models import Message, MessageEvent
from kizuna.messaging.schemas import BounceReport, BounceResult

WARNING_RATE = 0.001
PAUSE_RATE = 0.003
SOFT_BOUNCE_LIMIT = 3
# Soft bounces further back than this are forgotten: a mailbox full last year says nothing of today.
SOFT_BOUNCE_DAYS = 30


def _find(session: Session, report: BounceReport) -> Message | None:
    ref = (report.message_id or "").strip()
    if ref.isdigit():
        return session.get(Message, int(ref))
    if ref:
        key = ref.strip("<>").split("@", 1)[0]
        found = session.scalars(select(Message).where(Message.delivery_key == key)).first()
        if found is not None:
            return found
    if report.email:
        # The latest mail sent to the address: what a bounce without a Message-ID is most likely about.
        return session.scalars(
            select(Message)
            .where(Message.channel == "email", Message.address == report.email.strip(), Message.status == "sent")
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        ).first()
    return None


def record_reports(session: Session, *, actor: Actor, reports: list[BounceReport]) -> BounceResult:
    """Record each report on its message and suppress what must be suppressed, in the caller's transaction."""
    require(actor, "suppressions:write")
    recorded = suppressed = 0
    unmatched: list[int] = []
    for n, report in enumerate(reports):
        message = _find(session, report)
        address = (message.address if message is not None else None) or (report.email or "").strip()
        if message is None and not address:
            unmatched.append(n)
            continue
        details = {"reason": report.reason, "reported_by": actor.label}
        if report.occurred_at is not None:
            details["occurred_at"] = report.occurred_at.isoformat()
        hard = report.type == "complaint" or report.bounce_type == "hard"
        if message is not None:
            kind = report.type if hard else "soft_bounce"
            tracking.record(session, message, kind, details=details, origin=actor.origin)
            recorded += 1
        else:
            unmatched.append(n)
        repeated = not hard and message is not None and bool(address) and _keeps_soft_bouncing(session, address)
        if (hard or repeated) and address:
            reason = "complaint" if report.type == "complaint" else "hard_bounce" if hard else "soft_bounces"
            service.suppress(
                session,
                actor=actor,
                channel="email",
                address=address,
                reason=reason,
                customer_id=message.customer_id if message is not None else None,
                message_id=message.id if message is not None else None,
                note=(report.reason or "")[:2000] or None,
            )
            suppressed += 1
        if report.type == "complaint" and message is not None and message.customer_id is not None:
            _withdraw(session, actor, message)
    return BounceResult(recorded=recorded, suppressed=suppressed, unmatched=unmatched)


def _keeps_soft_bouncing(session: Session, address: str) -> bool:
    """Whether the address's recent mails soft-bounced ``SOFT_BOUNCE_LIMIT`` times with no sign of life since."""
    since = utcnow() - dt.timedelta(days=SOFT_BOUNCE_DAYS)
    to_address = (Message.channel == "email") & (func.lower(Message.address) == address.strip().lower())
    alive = session.scalar(
        select(func.max(MessageEvent.occurred_at))
        .join(Message, Message.id == MessageEvent.message_id)
        .where(to_address, MessageEvent.kind.in_(("open", "click")), MessageEvent.occurred_at >= since)
    )
    bounced = session.scalar(
        select(func.count(func.distinct(MessageEvent.message_id)))
        .join(Message, Message.id == MessageEvent.message_id)
        .where(to_address, MessageEvent.kind == "soft_bounce", MessageEvent.occurred_at >= max(since, alive or since))
    )
    return int(bounced or 0) >= SOFT_BOUNCE_LIMIT


def _withdraw(session: Session, actor: Actor, message: Message) -> None:
    from kizuna.customers import consent
    from kizuna.customers.schemas import ConsentCreate
    from kizuna.customers.service import record_consent, resolve_id

    customer_id = resolve_id(session, message.customer_id)  # type: ignore[arg-type]
    if consent.statuses_in_force(session, [customer_id], channel="email").get(customer_id) == "withdrawn":
        return
    record_consent(
        session,
        actor=Actor.system("complaints", origin=actor.origin),
        customer_id=customer_id,
        data=ConsentCreate(
            channel="email",
            purpose="marketing",
            status="withdrawn",
            method="complaint",
            source=f"message:{message.id}",
            evidence=f"spam complaint about message {message.id}, reported by {actor.label}",
        ),
    )


@dataclass(frozen=True)
class ComplaintRate:
    source: str
    source_id: int
    sent: int
    complaints: int
    rate: float
    level: str  # ok | warning | pause


def complaint_rate(session: Session, source: str, source_id: int) -> ComplaintRate:
    """Complaints per message sent by one campaign or journey (``source`` campaign|journey, its id)."""
    sent, complaints = session.execute(
        select(
            func.count().filter(Message.status == "sent"),
            func.count().filter(Message.complained_at.is_not(None)),
        ).where(Message.source == source, Message.source_id == source_id)
    ).one()
    sent, complaints = int(sent or 0), int(complaints or 0)
    rate = complaints / sent if sent else 0.0
    level = "pause" if rate >= PAUSE_RATE else "warning" if rate >= WARNING_RATE else "ok"
    return ComplaintRate(source=source, source_id=source_id, sent=sent, complaints=complaints, rate=rate, level=level)
