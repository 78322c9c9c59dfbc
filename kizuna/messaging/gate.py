"""The send-time gate: what decides, for a claimed batch at once, whether each message may go out now.

Checked in this order, each failing check recorded on the message as a reason code:

1. The customer: deleted customers' messages are gone with them (cascade); an inactive one is ``inactive``. A
   merge moves the merged customer's messages to the survivor (one merged while its message was being claimed is
   followed to the survivor here), so the survivor may hold the same message twice, from the same campaign or
   journey enrollment step: the older one goes, the other is skipped as ``duplicate``; the person gets it once.
2. The address for the channel (``no_address``); ``content["to"]`` names it for a message without a customer
   (a test mail) or a fixed receiver. A marketing message needs a customer (``no_customer``).
3. The suppression list (``suppressed``): hard bounces, complaints and manual entries stop every message to the
   address; an unsubscribe stops marketing (a customer who left the newsletter still gets their order's mail).
4. Consent, for marketing (``no_consent``): the decision in force (``customers.consent``) must be ``granted``. No
   decision means no consent (特定電子メール法 opt-in). An exemption the law allows (an existing business
   relationship, an address given on a business card) is recorded by the user as a granted decision with the
   method saying so (``existing_relationship``, ``business_card``), and counts like any other.
5. Quiet hours, for marketing: a message due inside them in the customer's time zone waits until they end
   (delayed, not dropped, and checked again then).
6. The frequency cap, for marketing (``capped``): at most N marketing messages per customer and channel within
   D days, counted across every journey and campaign: those sent, those other senders are sending now with a
   smaller id (so two senders never both give way to each other), and those this batch lets through first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.customers import consent
from kizuna.customers.models import Customer
from kizuna.messaging import channels, service, settings
from kizuna.messaging.models import Message

# The consent channel a message channel's marketing needs; a webhook goes to a system, not to a person.
CONSENT_CHANNEL = {"email": "email", "line": "line"}


@dataclass
class Decision:
    message: Message
    action: str  # send | skip | delay
    reason: str | None = None
    detail: str | None = None
    customer_id: int | None = None
    address: str | None = None
    until: dt.datetime | None = None
    locale: str | None = None


@lru_cache(maxsize=256)
def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or get_settings().default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(get_settings().default_timezone)


def _customers(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, int | None, str, str]]:
    """id -> (status, merged_into_id, timezone, locale), following merges to their survivors."""
    c = Customer.__table__.c
    out: dict[int, tuple[str, int | None, str, str]] = {}
    wanted = set(ids)
    for _ in range(10):  # merges chain rarely, and never in a loop; ten hops is plenty
        wanted -= set(out)
        if not wanted:
            break
        chunk = sorted(wanted)
        for start in range(0, len(chunk), 5000):
            rows = session.execute(
                select(c.id, c.status, c.merged_into_id, c.timezone, c.locale).where(
                    c.id.in_(chunk[start : start + 5000])
                )
            )
            out.update({r.id: (r.status, r.merged_into_id, r.timezone, r.locale) for r in rows})
        wanted = {m for (_, m, _, _) in out.values() if m is not None and m not in out}
    return out


def _survivor(customers: dict[int, tuple[str, int | None, str, str]], customer_id: int) -> int | None:
    seen: set[int] = set()
    current = customer_id
    while current in customers and customers[current][1] is not None and current not in seen:
        seen.add(current)
        current = customers[current][1]  # type: ignore[assignment]
    return current if current in customers else None


def check(session: Session, messages: list[Message], *, worker: str, now: dt.datetime) -> list[Decision]:
    """A decision per message (in id order): send it now, skip it with a reason, or delay it until a time."""
    messages = sorted(messages, key=lambda m: m.id)
    customers = _customers(session, {m.customer_id for m in messages if m.customer_id is not None})
    decisions: list[Decision] = []
    for m in messages:
        d = Decision(message=m, action="send", customer_id=m.customer_id)
        explicit = (m.content or {}).get("to")
        if m.customer_id is not None:
            survivor = _survivor(customers, m.customer_id)
            if survivor is None:
                d.action, d.reason, d.detail = "skip", "no_customer", f"customer {m.customer_id} no longer exists"
            else:
                d.customer_id = survivor
                status, _, _, locale = customers[survivor]
                d.locale = locale
                if status != "active":
                    d.action, d.reason, d.detail = "skip", "inactive", f"customer {survivor} is {status}"
        elif m.kind == "marketing":
            d.action, d.reason, d.detail = "skip", "no_customer", "a marketing message needs a customer (consent)"
        if d.action == "send" and explicit:
            d.address = str(explicit).strip()
        decisions.append(d)
    _duplicates(session, decisions)
    by_channel: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.action == "send":
            by_channel.setdefault(d.message.channel, []).append(d)
    for channel_name, group in by_channel.items():
        _addresses(session, channel_name, group)
        _suppressions(session, channel_name, group)
        _consent(session, channel_name, group)
        rules = settings.rules(session, channel_name)
        _quiet_hours(rules, group, customers, now)
        _caps(session, channel_name, rules, group, worker=worker, now=now)
    return decisions


def _skip(d: Decision, reason: str, detail: str) -> None:
    d.action, d.reason, d.detail = "skip", reason, detail


def _duplicates(session: Session, group: list[Decision]) -> None:
    """The same campaign or journey-step message twice for one person (a merge moved the merged customer's
    messages to the survivor): the older one goes, the other is skipped."""
    live = [d for d in group if d.action == "send" and d.message.source_id is not None and d.customer_id is not None]
    if not live:
        return

    def same(m: Message | Any, customer_id: int | None) -> tuple[Any, ...]:
        return (customer_id, m.channel, m.source, m.source_id, m.source_step, m.enrollment_id)

    customers = sorted({d.customer_id for d in live})  # type: ignore[type-var]
    sources = sorted({d.message.source_id for d in live})  # type: ignore[type-var]
    earliest: dict[tuple[Any, ...], int] = {}
    for start in range(0, len(customers), 5000):
        rows = session.execute(
            select(
                Message.id, Message.customer_id, Message.channel, Message.source, Message.source_id,
                Message.source_step, Message.enrollment_id,
            ).where(
                Message.customer_id.in_(customers[start : start + 5000]),
                Message.source_id.in_(sources),
                Message.status.in_(("queued", "sending", "sent")),
            )
        )  # fmt: skip
        for row in rows:
            key = same(row, row.customer_id)
            earliest[key] = min(earliest.get(key, row.id), row.id)
    for d in live:
        first = earliest.get(same(d.message, d.customer_id))
        if first is not None and first < d.message.id:
            _skip(d, "duplicate", f"customer {d.customer_id} already has message {first} of this {d.message.source}")


def _addresses(session: Session, channel_name: str, group: list[Decision]) -> None:
    need = [d.customer_id for d in group if d.address is None and d.customer_id is not None]
    found = channels.get(channel_name).addresses(session, need) if need else {}
    for d in group:
        if d.action != "send" or d.address:
            continue
        address = found.get(d.customer_id) if d.customer_id is not None else None
        if address:
            d.address = address
        else:
            _skip(d, "no_address", f"no {channel_name} address for customer {d.customer_id}")


def _suppressions(session: Session, channel_name: str, group: list[Decision]) -> None:
    live = [d for d in group if d.action == "send"]
    listed = service.suppressed(session, channel_name, [d.address or "" for d in live])
    for d in live:
        reason = listed.get(service.normalise_address(channel_name, d.address or ""))
        if reason and (d.message.kind == "marketing" or reason in service.SUPPRESSES_SERVICE):
            _skip(d, "suppressed", f"{d.address} is on the suppression list ({reason})")


def _consent(session: Session, channel_name: str, group: list[Decision]) -> None:
    consent_channel = CONSENT_CHANNEL.get(channel_name)
    live = [d for d in group if d.action == "send" and d.message.kind == "marketing"]
    if consent_channel is None or not live:
        return
    statuses = consent.statuses_in_force(session, [d.customer_id for d in live], channel=consent_channel)  # type: ignore[misc]
    for d in live:
        status = statuses.get(d.customer_id)  # type: ignore[arg-type]
        if status != consent.GRANTED:
            why = "no consent decision is recorded" if status is None else f"the consent in force is {status}"
            _skip(d, "no_consent", f"{consent_channel} marketing: {why}")


def _quiet_hours(
    rules: settings.DeliveryRules,
    group: list[Decision],
    customers: dict[int, tuple[str, int | None, str, str]],
    now: dt.datetime,
) -> None:
    if rules.quiet_start is None or rules.quiet_end is None:
        return
    for d in group:
        if d.action != "send" or d.message.kind != "marketing":
            continue
        zone = _zone(customers[d.customer_id][2] if d.customer_id in customers else None)
        until = rules.quiet_until(now.astimezone(zone))
        if until is not None:
            d.action, d.reason, d.until = "delay", "quiet_hours", until.astimezone(dt.UTC)
            d.detail = f"quiet hours in {zone.key} until {until:%H:%M}"


def _caps(
    session: Session,
    channel_name: str,
    rules: settings.DeliveryRules,
    group: list[Decision],
    *,
    worker: str,
    now: dt.datetime,
) -> None:
    if rules.cap_count <= 0:
        return
    live = [d for d in group if d.action == "send" and d.message.kind == "marketing"]
    ids = sorted({d.customer_id for d in live if d.customer_id is not None})
    if not ids:
        return
    since = now - dt.timedelta(days=rules.cap_days)
    sent: dict[int, int] = {}
    others: dict[int, list[int]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        marketing = (Message.customer_id.in_(chunk), Message.channel == channel_name, Message.kind == "marketing")
        for cid, count in session.execute(
            select(Message.customer_id, func.count())
            .where(*marketing, Message.status == "sent", Message.sent_at >= since)
            .group_by(Message.customer_id)
        ):
            sent[cid] = int(count)
        for cid, mid in session.execute(
            select(Message.customer_id, Message.id).where(
                *marketing, Message.status == "sending", or_(Message.locked_by != worker, Message.locked_by.is_(None))
            )
        ):
            others.setdefault(cid, []).append(mid)
    passed: dict[int, int] = {}
    for d in sorted(live, key=lambda d: d.message.id):
        cid = d.customer_id
        assert cid is not None
        before = sum(1 for mid in others.get(cid, ()) if mid < d.message.id)
        count = sent.get(cid, 0) + before + passed.get(cid, 0)
        if count >= rules.cap_count:
            _skip(
                d,
                "capped",
                f"{count} marketing {channel_name} messages in {rules.cap_days} days (cap {rules.cap_count})",
            )
        else:
            passed[cid] = passed.get(cid, 0) + 1
