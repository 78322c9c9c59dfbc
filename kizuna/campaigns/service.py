"""Campaigns: create, schedule, launch (fix the audience as messages), test A/B, pick the winner, pause, measure.

Each state change is one conditional UPDATE of the campaign's status (``WHERE status = <expected>``) in the
transaction that does the work, so two workers racing for the same due campaign launch it once, and a launch
either writes every recipient's message or none. Sending itself is the sender's: consent, suppressions,
frequency caps and quiet hours are checked per message at send time, and skips are recorded there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select, update
from sqlalchemy.orm import Session

from kizuna.analytics import significance
from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.campaigns.models import Campaign
from kizuna.campaigns.schemas import CampaignCreate, CampaignStats, CampaignUpdate, VariantStats
from kizuna.customers.models import Customer
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.messaging.models import Message, Template
from kizuna.messaging.queue import NewMessage, queue_many
from kizuna.orders.models import Order
from kizuna.orders.spend import SPEND_STATUSES
from kizuna.outbox.service import emit
from kizuna.segments.models import Segment, SegmentMembership

# A recipient who orders within this many days after their message counts as a conversion of the campaign.
CONVERSION_DAYS = 7
# Gmail's and Yahoo's bulk-sender thresholds for complaints: warn at 0.1%, stop sending at 0.3%.
COMPLAINT_WARN = 0.001
COMPLAINT_PAUSE = 0.003
EDITABLE = ("draft", "scheduled")


def choices(session: Session, *, actor: Actor) -> dict[str, list[Any]]:
    """What a campaign form offers: segments (id, name, member_count) and templates (id, name, channel)."""
    require(actor, "campaigns:read")
    return {
        "segments": list(
            session.execute(select(Segment.id, Segment.name, Segment.member_count).order_by(Segment.name))
        ),
        "templates": list(
            session.execute(select(Template.id, Template.name, Template.channel).order_by(Template.name))
        ),
    }


def related(session: Session, campaign: Campaign) -> tuple[Segment | None, Template | None]:
    """The campaign's segment and template, for its page."""
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    template = session.get(Template, campaign.template_id) if campaign.template_id else None
    return segment, template


def list_campaigns(session: Session, *, actor: Actor) -> list[Campaign]:
    require(actor, "campaigns:read")
    return list(session.scalars(select(Campaign).order_by(Campaign.id.desc())))


def get_campaign(session: Session, campaign_id: int, *, actor: Actor) -> Campaign:
    require(actor, "campaigns:read")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}", field="campaign_id")
    return campaign


def _check(
    session: Session,
    *,
    name: str,
    channel: str,
    segment_id: int | None,
    template_ids: list[int],
    campaign_id: int | None = None,
) -> None:
    clash = session.scalar(select(Campaign.id).where(Campaign.name == name, Campaign.id != (campaign_id or 0)))
    if clash is not None:
        raise Conflict(f"a campaign named {name!r} exists already (id {clash})", field="name")
    if segment_id is not None and session.get(Segment, segment_id) is None:
        raise ValidationError(f"no segment with id {segment_id}", field="segment_id")
    for template_id in template_ids:
        template = session.get(Template, template_id)
        if template is None:
            raise ValidationError(f"no template with id {template_id}", field="template_id")
        if template.channel != channel:
            raise ValidationError(
                f"template {template.name!r} is for {template.channel}, the campaign sends by {channel}",
                field="template_id",
            )


def create_campaign(session: Session, *, actor: Actor, data: CampaignCreate) -> Campaign:
    require(actor, "campaigns:write")
    ab = data.ab_test.model_dump() if data.ab_test else {}
    _check(
        session,
        name=data.name,
        channel=data.channel,
        segment_id=data.segment_id,
        template_ids=[data.template_id, *_variant_templates(ab)],
    )
    campaign = Campaign(
        name=data.name,
        description=data.description,
        channel=data.channel,
        kind=data.kind,
        segment_id=data.segment_id,
        template_id=data.template_id,
        content={"subject": data.subject} if data.subject else {},
        ab_test=ab,
        status="draft",
        created_by=actor.label,
    )
    session.add(campaign)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="campaign.create",
        entity_type="campaign",
        entity_id=campaign.id,
        details={"name": campaign.name, "segment_id": campaign.segment_id},
        summary=f"created campaign {campaign.name}",
    )
    return campaign


def update_campaign(session: Session, campaign_id: int, *, actor: Actor, data: CampaignUpdate) -> Campaign:
    require(actor, "campaigns:write")
    campaign = get_campaign(session, campaign_id, actor=actor)
    if campaign.status not in EDITABLE:
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}: only a draft or scheduled one can change")
    changes = data.model_dump(exclude_unset=True)
    ab = campaign.ab_test
    if data.clear_ab_test:
        ab = {}
    elif data.ab_test is not None:
        ab = data.ab_test.model_dump()
    name = data.name if data.name is not None else campaign.name
    segment_id = data.segment_id if data.segment_id is not None else campaign.segment_id
    template_id = data.template_id if data.template_id is not None else campaign.template_id
    _check(
        session,
        name=name,
        channel=campaign.channel,
        segment_id=segment_id,
        template_ids=[t for t in [template_id, *_variant_templates(ab)] if t is not None],
        campaign_id=campaign.id,
    )
    campaign.name, campaign.segment_id, campaign.template_id, campaign.ab_test = name, segment_id, template_id, ab
    if data.description is not None:
        campaign.description = data.description
    if "subject" in changes:
        campaign.content = {"subject": data.subject} if data.subject else {}
    audit.record(
        session,
        actor=actor,
        action="campaign.update",
        entity_type="campaign",
        entity_id=campaign.id,
        details={k: v for k, v in changes.items() if k != "ab_test"},
        summary=f"edited campaign {name}",
    )
    return campaign


def _variant_templates(ab: dict[str, Any]) -> list[int]:
    return [v["template_id"] for v in ab.get("variants", []) if v.get("template_id")]


def schedule(session: Session, campaign_id: int, *, actor: Actor, at: dt.datetime | None = None) -> Campaign:
    """Send at ``at`` (now when empty): the worker launches it when due."""
    require(actor, "campaigns:write")
    campaign = get_campaign(session, campaign_id, actor=actor)
    if campaign.status not in EDITABLE:
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}: it cannot be scheduled again")
    if campaign.segment_id is None or campaign.template_id is None:
        raise ValidationError("a campaign needs a segment and a template before it can be sent", field="segment_id")
    if at is not None and at.tzinfo is None:
        raise ValidationError("give the send time with a time zone (e.g. 2026-12-01T09:00:00+09:00)", field="at")
    campaign.scheduled_at = at or utcnow()
    campaign.status = "scheduled"
    audit.record(
        session,
        actor=actor,
        action="campaign.schedule",
        entity_type="campaign",
        entity_id=campaign.id,
        details={"at": campaign.scheduled_at.isoformat()},
        summary=f"scheduled campaign {campaign.name}",
    )
    return campaign


def cancel(session: Session, campaign_id: int, *, actor: Actor) -> Campaign:
    """Stop a campaign for good: nothing more goes out; what is not sent yet is recorded as skipped (cancelled)."""
    require(actor, "campaigns:write")
    campaign = get_campaign(session, campaign_id, actor=actor)
    if campaign.status in ("sent", "cancelled"):
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status} already")
    _set_messages(session, campaign.id, frm=("queued", "held"), to="skipped", reason="cancelled")
    campaign.status, campaign.finished_at = "cancelled", utcnow()
    audit.record(
        session,
        actor=actor,
        action="campaign.cancel",
        entity_type="campaign",
        entity_id=campaign.id,
        summary=f"cancelled campaign {campaign.name}",
    )
    return campaign


def pause(session: Session, campaign_id: int, *, actor: Actor, reason: str = "paused by hand") -> Campaign:
    require(actor, "campaigns:write")
    campaign = get_campaign(session, campaign_id, actor=actor)
    if campaign.status not in ("testing", "sending"):
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}: only a sending one can be paused")
    _pause(session, campaign, reason)
    audit.record(
        session,
        actor=actor,
        action="campaign.pause",
        entity_type="campaign",
        entity_id=campaign.id,
        details={"reason": reason},
        summary=f"paused campaign {campaign.name}",
    )
    return campaign


def _pause(session: Session, campaign: Campaign, reason: str) -> None:
    # Messages a sender has claimed already (sending) finish; everything still queued waits.
    _set_messages(session, campaign.id, frm=("queued",), to="held")
    campaign.status, campaign.paused_reason = "paused", reason


def resume(session: Session, campaign_id: int, *, actor: Actor) -> Campaign:
    require(actor, "campaigns:write")
    campaign = get_campaign(session, campaign_id, actor=actor)
    if campaign.status != "paused":
        raise Conflict(f"campaign {campaign.name!r} is {campaign.status}, not paused")
    testing = bool(campaign.ab_test) and campaign.winner is None
    # While the test runs only its sample goes out; the remainder (no variant yet) waits for the winner.
    condition = Message.variant.is_not(None) if testing else None
    _set_messages(session, campaign.id, frm=("held",), to="queued", extra=condition)
    campaign.status, campaign.paused_reason = ("testing" if testing else "sending"), None
    audit.record(
        session,
        actor=actor,
        action="campaign.resume",
        entity_type="campaign",
        entity_id=campaign.id,
        summary=f"resumed campaign {campaign.name}",
    )
    return campaign


def _set_messages(
    session: Session,
    campaign_id: int,
    *,
    frm: tuple[str, ...],
    to: str,
    reason: str | None = None,
    extra: ColumnElement[bool] | None = None,
    values: dict[str, Any] | None = None,
) -> int:
    query = update(Message).where(
        Message.source == "campaign", Message.source_id == campaign_id, Message.status.in_(frm)
    )
    if extra is not None:
        query = query.where(extra)
    new: dict[str, Any] = {"status": to, **(values or {})}
    if reason is not None:
        new["reason"] = reason
    return session.execute(query.values(**new).execution_options(synchronize_session=False)).rowcount


# --- what the worker does -----------------------------------------------------------------------------------


def _claim(session: Session, campaign_id: int, frm: str, to: str) -> bool:
    """Move the campaign from ``frm`` to ``to`` if it is still there: the worker that gets 1 row does the work."""
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == frm)
        .values(status=to, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def audience(session: Session, campaign: Campaign) -> list[int]:
    """The segment's current active members, in id order."""
    rows = session.scalars(
        select(SegmentMembership.customer_id)
        .join(Customer, Customer.id == SegmentMembership.customer_id)
        .where(
            SegmentMembership.segment_id == campaign.segment_id,
            SegmentMembership.exited_at.is_(None),
            Customer.status == "active",
        )
        .order_by(SegmentMembership.customer_id)
    )
    return list(rows)


def _shuffle_key(campaign_id: int, customer_id: int) -> bytes:
    return hashlib.blake2b(f"{campaign_id}:{customer_id}".encode(), digest_size=8).digest()


def launch(session: Session, campaign_id: int, *, actor: Actor) -> int:
    """Fix the audience of a due campaign as messages (all queued; or the test sample queued by variant and the
    remainder held); returns how many. 0 and nothing written when another worker launched it first."""
    if not _claim(session, campaign_id, "scheduled", "launching"):
        return 0
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    session.refresh(campaign)
    segment = session.get(Segment, campaign.segment_id) if campaign.segment_id else None
    if segment is not None and segment.kind == "dynamic" and segment.rule:
        from kizuna.segments import service as segments

        segments.refresh(session, segment.id, actor=actor)
    members = audience(session, campaign)
    now = utcnow()
    ab = campaign.ab_test or {}
    base = {"subject": campaign.content["subject"]} if campaign.content.get("subject") else {}

    def message(customer_id: int, variant: dict[str, Any] | None, *, held: bool = False) -> NewMessage:
        content = dict(base)
        template_id = campaign.template_id
        if variant is not None:
            if variant.get("subject"):
                content["subject"] = variant["subject"]
            template_id = variant.get("template_id") or template_id
        return NewMessage(
            key=f"campaign:{campaign.id}:customer:{customer_id}",
            customer_id=customer_id,
            channel=campaign.channel,
            kind=campaign.kind,
            source="campaign",
            source_id=campaign.id,
            variant=variant["name"] if variant else None,
            template_id=template_id,
            content=content,
            held=held,
        )

    if ab:
        variants = ab["variants"]
        order = sorted(members, key=lambda c: _shuffle_key(campaign.id, c))
        size = min(len(order), max(len(variants), round(len(order) * ab["sample_percent"] / 100)))
        sample, rest = order[:size], order[size:]
        rows = [message(c, variants[i % len(variants)]) for i, c in enumerate(sample)]
        rows += [message(c, None, held=True) for c in rest]
        campaign.test_ends_at = now + dt.timedelta(hours=float(ab["test_hours"]))
        campaign.status = "testing"
    else:
        rows = [message(c, None) for c in members]
        campaign.status = "sending"
    queue_many(session, rows)
    campaign.audience, campaign.launched_at = len(members), now
    emit(
        session,
        "campaign.launched",
        {"campaign_id": campaign.id, "name": campaign.name, "audience": len(members), "ab_test": bool(ab)},
        origin="worker",
    )
    audit.record(
        session,
        actor=actor,
        action="campaign.launch",
        entity_type="campaign",
        entity_id=campaign.id,
        details={"audience": len(members)},
        summary=f"launched campaign {campaign.name} to {len(members)}",
    )
    return len(members)


def decide(session: Session, campaign_id: int, *, actor: Actor) -> str | None:
    """After the test window: pick the variant with the best rate of the test's metric and release the
    remainder with its content. The decision (rates, p-value) is kept on the campaign."""
    if not _claim(session, campaign_id, "testing", "sending"):
        return None
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    session.refresh(campaign)
    ab = campaign.ab_test
    metric = ab.get("metric", "opened")
    column = Message.opened_at if metric == "opened" else Message.clicked_at
    counts = {
        v: (int(n), int(s))
        for v, n, s in session.execute(
            select(Message.variant, func.count(), func.count(column))
            .where(
                Message.source == "campaign",
                Message.source_id == campaign.id,
                Message.variant.is_not(None),
                Message.status == "sent",
            )
            .group_by(Message.variant)
        )
    }
    names = [v["name"] for v in ab["variants"]]
    trials = [counts.get(n, (0, 0))[0] for n in names]
    successes = [counts.get(n, (0, 0))[1] for n in names]
    rates = [significance.rate(s, t) or 0.0 for s, t in zip(successes, trials, strict=True)]
    best = max(range(len(names)), key=lambda i: (rates[i], -i))
    test = significance.compare(successes, trials)
    winner = next(v for v in ab["variants"] if v["name"] == names[best])
    content = {"subject": campaign.content["subject"]} if campaign.content.get("subject") else {}
    if winner.get("subject"):
        content["subject"] = winner["subject"]
    released = _set_messages(
        session,
        campaign.id,
        frm=("held",),
        to="queued",
        extra=Message.variant.is_(None),
        values={
            "variant": winner["name"],
            "template_id": winner.get("template_id") or campaign.template_id,
            "content": content,
            "due_at": utcnow(),
        },
    )
    campaign.winner = winner["name"]
    campaign.decision = {
        "metric": metric,
        "variants": names,
        "sent": trials,
        "successes": successes,
        "rates": rates,
        "test": test.test,
        "p_value": test.p_value,
        "significant": test.significant,
        "released": released,
        "decided_at": utcnow().isoformat(),
        "note": "highest rate wins" + ("" if test.significant else "; the difference is not significant"),
    }
    emit(
        session,
        "campaign.winner_picked",
        {"campaign_id": campaign.id, "winner": winner["name"], "p_value": test.p_value},
        origin="worker",
    )
    audit.record(
        session,
        actor=actor,
        action="campaign.winner",
        entity_type="campaign",
        entity_id=campaign.id,
        details=campaign.decision,
        summary=f"campaign {campaign.name}: variant {winner['name']} won",
    )
    return winner["name"]


def complaint_rate(session: Session, campaign_id: int) -> tuple[float | None, int, int]:
    """(complaints / sent, complaints, sent) of a campaign's messages."""
    sent, complaints = session.execute(
        select(func.count(Message.sent_at), func.count(Message.complained_at)).where(
            Message.source == "campaign", Message.source_id == campaign_id
        )
    ).one()
    return (complaints / sent if sent else None), int(complaints), int(sent)


def watch(session: Session, campaign_id: int, *, actor: Actor) -> str | None:
    """A sending campaign: pause it when complaints reach the threshold, mark it sent when nothing is left."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.status not in ("testing", "sending"):
        return None
    rate, complaints, sent = complaint_rate(session, campaign_id)
    if rate is not None and rate >= COMPLAINT_PAUSE:
        reason = f"complaint rate {rate:.2%} ({complaints} of {sent}) reached {COMPLAINT_PAUSE:.1%}"
        _pause(session, campaign, reason)
        emit(session, "campaign.paused", {"campaign_id": campaign.id, "reason": reason}, origin="worker")
        audit.record(
            session,
            actor=actor,
            action="campaign.pause",
            entity_type="campaign",
            entity_id=campaign.id,
            details={"reason": reason, "automatic": True},
            summary=f"paused campaign {campaign.name}: {reason}",
        )
        return "paused"
    if campaign.status == "sending":
        left = session.scalar(
            select(func.count()).where(
                Message.source == "campaign",
                Message.source_id == campaign_id,
                Message.status.in_(("queued", "sending", "held")),
            )
        )
        if not left:
            campaign.status, campaign.finished_at = "sent", utcnow()
            emit(session, "campaign.sent", {"campaign_id": campaign.id}, origin="worker")
            return "sent"
    return None


@dataclass(frozen=True)
class Due:
    launch: list[int]
    decide: list[int]
    watch: list[int]


def due(session: Session, *, now: dt.datetime | None = None) -> Due:
    now = now or utcnow()
    rows = session.execute(
        select(Campaign.id, Campaign.status, Campaign.scheduled_at, Campaign.test_ends_at).where(
            Campaign.status.in_(("scheduled", "testing", "sending"))
        )
    ).all()
    return Due(
        launch=[r.id for r in rows if r.status == "scheduled" and r.scheduled_at and r.scheduled_at <= now],
        decide=[r.id for r in rows if r.status == "testing" and r.test_ends_at and r.test_ends_at <= now],
        watch=[r.id for r in rows if r.status in ("testing", "sending")],
    )


# --- measurement --------------------------------------------------------------------------------------------


def _within_days(session: Session, later: Any, earlier: Any, days: int) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "sqlite":
        return func.julianday(later) - func.julianday(earlier) <= days
    return later <= earlier + func.make_interval(0, 0, 0, days)


def stats(session: Session, campaign_id: int, *, actor: Actor) -> CampaignStats:
    """Per variant and in total: messages by status, opens, clicks, unsubscribes, bounces, complaints and
    conversions (a counted order within ``CONVERSION_DAYS`` after the message was sent)."""
    campaign = get_campaign(session, campaign_id, actor=actor)
    m = Message
    converted = exists().where(
        Order.customer_id == m.customer_id,
        Order.status.in_(SPEND_STATUSES),
        Order.ordered_at > m.sent_at,
        _within_days(session, Order.ordered_at, m.sent_at, CONVERSION_DAYS),
    )

    def n(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    columns = [
        func.count(),
        n(m.status == "queued"),
        n(m.status == "held"),
        n(m.status == "sent"),
        n(m.status == "skipped"),
        n(m.status == "failed"),
        func.count(m.opened_at),
        func.count(m.clicked_at),
        func.count(m.unsubscribed_at),
        func.count(m.bounced_at),
        func.count(m.complained_at),
        n(and_(m.status == "sent", converted)),
    ]
    where = (m.source == "campaign", m.source_id == campaign.id)
    per = session.execute(
        select(m.variant, *columns).where(*where).group_by(m.variant).order_by(m.variant.nulls_last())
    ).all()
    total = session.execute(select(*columns).where(*where)).one()
    reasons = dict(
        session.execute(select(m.reason, func.count()).where(*where, m.status == "skipped").group_by(m.reason)).all()
    )

    def shape(variant: str, row: Any) -> VariantStats:
        values = [int(v or 0) for v in row]
        (messages, queued, held, sent, skipped, failed, opened, clicked, unsub, bounced, complained, conv) = values
        return VariantStats(
            variant=variant,
            messages=messages,
            queued=queued,
            held=held,
            sent=sent,
            skipped=skipped,
            failed=failed,
            opened=opened,
            clicked=clicked,
            unsubscribed=unsub,
            bounced=bounced,
            complained=complained,
            converted=conv,
            open_rate=significance.rate(opened, sent),
            click_rate=significance.rate(clicked, sent),
            conversion_rate=significance.rate(conv, sent),
        )

    total_stats = shape("all", total)
    rate = significance.rate(total_stats.complained, total_stats.sent)
    test: dict[str, Any] = dict(campaign.decision)
    if campaign.ab_test and not campaign.decision:
        variants = [shape(r[0], r[1:]) for r in per if r[0] is not None]
        metric = campaign.ab_test.get("metric", "opened")
        if len(variants) >= 2:
            result = significance.compare([getattr(v, metric) for v in variants], [v.sent for v in variants])
            test = {
                "metric": metric,
                "test": result.test,
                "p_value": result.p_value,
                "significant": result.significant,
                "provisional": True,
            }
    return CampaignStats(
        campaign_id=campaign.id,
        status=campaign.status,
        total=total_stats,
        variants=[shape(r[0] or "-", r[1:]) for r in per],
        skipped_reasons={str(k): int(v) for k, v in reasons.items()},
        complaint_rate=rate,
        complaint_warning=rate is not None and rate >= COMPLAINT_WARN,
        test=test,
        conversion_days=CONVERSION_DAYS,
    )
