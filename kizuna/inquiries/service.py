"""Inquiry actions: open (or append a repeat to an open ticket), reply and note, change status and priority; claim
and release live in claims.py. Each checks the permission, writes its audit entry and outbox message in the
caller's transaction and never commits; replies to the customer go out through kizuna/messaging after commit.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.customers import identities
from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import create_customer, resolve_id
from kizuna.db import check_version, utcnow
from kizuna.errors import Conflict, NotFound, PermissionDenied, ValidationError
from kizuna.inquiries import sla
from kizuna.inquiries.models import OPEN_STATUSES, Inquiry, InquiryCategory, InquiryEvent, InquiryMessage
from kizuna.inquiries.schemas import InquiryCreate, InquiryUpdate, ReplyCreate
from kizuna.outbox.service import emit
from kizuna.sales.models import Team, team_members

REFERENCE_PREFIX = "KZ-"
# ``[#KZ-123]`` in a subject: how a reply by mail finds its ticket even when the client drops the headers.
REFERENCE = re.compile(r"\[#KZ-(\d{1,12})\]")


def reference(inquiry_id: int) -> str:
    return f"{REFERENCE_PREFIX}{inquiry_id}"


def get_inquiry(session: Session, inquiry_id: int) -> Inquiry:
    inquiry = session.get(Inquiry, inquiry_id)
    if inquiry is None:
        raise NotFound(f"inquiry {inquiry_id} not found")
    return inquiry


def is_overdue(inquiry: Inquiry, now: dt.datetime | None = None) -> bool:
    """Past its first-response deadline without a response, or past its resolution deadline while open; never
    while its SLA is paused (waiting for the customer)."""
    if inquiry.status not in OPEN_STATUSES or inquiry.sla_paused_at is not None:
        return False
    now = now or utcnow()
    late_first = inquiry.first_responded_at is None and inquiry.first_response_due_at is not None
    if late_first and inquiry.first_response_due_at < now:  # type: ignore[operator]
        return True
    return inquiry.resolution_due_at is not None and inquiry.resolution_due_at < now


def team_ids_of(session: Session, user_id: int | None) -> set[int]:
    if user_id is None:
        return set()
    return set(session.scalars(select(team_members.c.team_id).where(team_members.c.user_id == user_id)))


def require_team(session: Session, actor: Actor, inquiry: Inquiry) -> None:
    """An agent works the tickets of their own teams; managers and admins (``inquiries:write_all``) any."""
    if inquiry.team_id is None or actor.can("inquiries:write_all"):
        return
    if inquiry.team_id not in team_ids_of(session, actor.user_id):
        team = session.get(Team, inquiry.team_id)
        name = team.name if team else str(inquiry.team_id)
        raise PermissionDenied(
            f"inquiry {reference(inquiry.id)} belongs to team '{name}', which you are not in; ask that team or a "
            "manager",
            key="error.inquiry_other_team",
            params={"team": name},
        )


def user_label(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id is not None else None
    return (user.name or user.email) if user else "?"


def _event(session: Session, inquiry: Inquiry, kind: str, actor: Actor, now: dt.datetime | None = None) -> None:
    session.add(
        InquiryEvent(
            inquiry_id=inquiry.id,
            customer_id=inquiry.customer_id,
            kind=kind,
            subject=inquiry.subject,
            actor_user_id=actor.user_id,
            occurred_at=now or utcnow(),
        )
    )


def payload(inquiry: Inquiry) -> dict[str, Any]:
    return {
        "inquiry_id": inquiry.id,
        "reference": reference(inquiry.id),
        "status": inquiry.status,
        "priority": inquiry.priority,
        "channel": inquiry.channel,
        "category_id": inquiry.category_id,
        "customer_id": inquiry.customer_id,
        "team_id": inquiry.team_id,
        "claimed_by": inquiry.claimed_by,
        # Waiting for the customer: the SLA clocks stand still (sla.py), so a receiver need not escalate it.
        "sla_paused": inquiry.sla_paused_at is not None,
    }


# --- categories and customers --------------------------------------------------------------------------------


def find_category(session: Session, value: int | str | None) -> InquiryCategory | None:
    """The category named by id or by name (either language); a clear error naming the choices otherwise."""
    if value is None or value == "":
        return None
    found: InquiryCategory | None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        found = session.get(InquiryCategory, int(value))
    else:
        text = value.strip()
        found = session.scalars(
            select(InquiryCategory).where(or_(InquiryCategory.name == text, InquiryCategory.name_en == text))
        ).first()
    if found is None:
        names = list(session.scalars(select(InquiryCategory.name).order_by(InquiryCategory.name).limit(30)))
        raise ValidationError(
            f"unknown category {str(value)[:60]!r}; one of: {', '.join(names) or '(none defined yet)'}",
            field="category",
            key="error.inquiry_category_unknown",
            params={"value": str(value)[:60]},
        )
    return found


def link_customer(session: Session, *, actor: Actor, email: str | None, phone: str | None, name: str | None) -> int:
    """The customer an e-mail or phone belongs to (identity rules: an e-mail is unique, a phone a hint whose
    oldest holder is taken); a new customer when none matches."""
    stored_email = identities.normalise("email", email) if email else None
    stored_phone = identities.normalise("phone", phone) if phone else None
    if stored_email:
        owner = identities.owner(session, "email", stored_email)
        if owner is not None:
            return resolve_id(session, owner)
    if stored_phone:
        holders = identities.owners(session, "phone", stored_phone)
        if holders:
            return resolve_id(session, holders[0])
    family, _, given = (name or "").strip().partition(" ")
    data = CustomerCreate(
        email=stored_email, phone=stored_phone, family_name=family.strip() or None, given_name=given.strip() or None
    )
    # Opening a ticket may create its customer even for an agent whose role edits no customers otherwise.
    maker = actor if actor.can("customers:write") else Actor.system("inquiries", origin=actor.origin)
    return create_customer(session, actor=maker, data=data).id


# --- opening ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    inquiry: Inquiry
    created: bool
    message: InquiryMessage | None


def create_inquiry(session: Session, *, actor: Actor, data: InquiryCreate) -> Inquiry:
    """A new ticket, or the customer's open ticket on the same category when they wrote within the repeat window
    (``KIZUNA_INQUIRY_REPEAT_HOURS``), with the body appended. The chat bot's hand-over calls this."""
    return open_inquiry(session, actor=actor, data=data).inquiry


def open_inquiry(
    session: Session, *, actor: Actor, data: InquiryCreate, repeat: bool = True, now: dt.datetime | None = None
) -> Opened:
    """``create_inquiry`` saying whether a ticket was opened or a repeat appended (``repeat=False``: always open)."""
    require(actor, "inquiries:create")
    category = find_category(session, data.category)
    if data.customer_id is not None:
        try:
            customer_id = resolve_id(session, data.customer_id)
        except NotFound as exc:
            raise ValidationError(f"customer {data.customer_id} does not exist", field="customer_id") from exc
    else:
        customer_id = link_customer(session, actor=actor, email=data.email, phone=data.phone, name=data.name)
    team_id = data.team_id if data.team_id is not None else (category.team_id if category else None)
    if team_id is not None and session.get(Team, team_id) is None:
        raise ValidationError(f"team {team_id} does not exist", field="team_id")
    now = now or utcnow()
    existing = _open_repeat(session, customer_id, category.id if category else None, now) if repeat else None
    if existing is not None:
        _transcript(session, existing, data, now)  # a chat hand-over keeps its conversation on the open ticket
        message = _customer_message(session, existing, data, now)
        existing.last_customer_message_at = now
        if existing.status == "pending":
            # The customer answered: the ball is with the agent again, and the SLA clocks run on.
            for name, value in sla.clock_changes(existing, "open", now).items():
                setattr(existing, name, value)
            existing.status = "open"
        _event(session, existing, "received", actor, now)
        audit.record(
            session, actor=actor, action="inquiry.append", entity_type="inquiry", entity_id=existing.id,
            customer_id=customer_id, summary=f"{reference(existing.id)}: {data.subject}",
        )  # fmt: skip
        emit(session, "inquiry.received", payload(existing), customer_id=customer_id, origin=actor.origin)
        return Opened(existing, False, message)
    first_due, resolve_due = sla.due_times(data.priority, now)
    inquiry = Inquiry(
        subject=data.subject.strip(),
        status="new",
        priority=data.priority,
        channel=data.channel,
        category_id=category.id if category else None,
        customer_id=customer_id,
        team_id=team_id,
        reply_to=data.email.strip() if data.email else None,
        first_response_due_at=first_due,
        resolution_due_at=resolve_due,
        last_customer_message_at=now,
        created_at=now,
    )
    session.add(inquiry)
    session.flush()
    _transcript(session, inquiry, data, now)
    message = _customer_message(session, inquiry, data, now)
    _event(session, inquiry, "opened", actor)
    audit.record(
        session, actor=actor, action="inquiry.create", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=customer_id, summary=f"{reference(inquiry.id)}: {inquiry.subject}",
    )  # fmt: skip
    emit(session, "inquiry.created", payload(inquiry), customer_id=customer_id, origin=actor.origin)
    return Opened(inquiry, True, message)


def _open_repeat(session: Session, customer_id: int, category_id: int | None, now: dt.datetime) -> Inquiry | None:
    hours = get_settings().inquiry_repeat_hours
    if hours <= 0:
        return None
    query = select(Inquiry).where(
        Inquiry.customer_id == customer_id,
        Inquiry.status.in_(OPEN_STATUSES),
        Inquiry.last_customer_message_at >= now - dt.timedelta(hours=hours),
        Inquiry.category_id == category_id if category_id is not None else Inquiry.category_id.is_(None),
    )
    return session.scalars(query.order_by(Inquiry.last_customer_message_at.desc(), Inquiry.id.desc())).first()


def _transcript(session: Session, inquiry: Inquiry, data: InquiryCreate, now: dt.datetime) -> None:
    for line in data.transcript:
        direction = "in" if line.author == "customer" else "out"
        session.add(
            InquiryMessage(
                inquiry_id=inquiry.id, customer_id=inquiry.customer_id, direction=direction, author_label=line.author,
                body=line.text, details={"transcript": True}, created_at=line.at or now,
            )
        )  # fmt: skip


def _customer_message(
    session: Session, inquiry: Inquiry, data: InquiryCreate, now: dt.datetime
) -> InquiryMessage | None:
    if not data.body and not data.raw:
        return None
    message = InquiryMessage(
        inquiry_id=inquiry.id,
        customer_id=inquiry.customer_id,
        direction="in",
        author_label=data.email or data.phone or data.name or "",
        body=data.body,
        email_message_id=data.email_message_id,
        raw=data.raw,
        details={"channel": data.channel},
        created_at=now,
    )
    session.add(message)
    session.flush()
    return message


def append_customer_message(
    session: Session, *, actor: Actor, inquiry: Inquiry, body: str, author: str, email_message_id: str | None = None,
    raw: str | None = None, details: dict[str, Any] | None = None, now: dt.datetime | None = None,
) -> InquiryMessage:  # fmt: skip
    """A customer's message into an existing thread (a reply by mail); a resolved ticket opens again, a pending
    one's SLA clocks run on."""
    now = now or utcnow()
    message = InquiryMessage(
        inquiry_id=inquiry.id, customer_id=inquiry.customer_id, direction="in", author_label=author, body=body,
        email_message_id=email_message_id, raw=raw, details=details or {}, created_at=now,
    )  # fmt: skip
    session.add(message)
    inquiry.last_customer_message_at = now
    reopened = inquiry.status in ("resolved", "closed")
    if inquiry.status in ("pending", "resolved", "closed"):
        for name, value in sla.clock_changes(inquiry, "open", now).items():
            setattr(inquiry, name, value)
        inquiry.status = "open"
        inquiry.resolved_at = None
    session.flush()
    _event(session, inquiry, "reopened" if reopened else "received", actor, now)
    audit.record(
        session, actor=actor, action="inquiry.append", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=f"{reference(inquiry.id)}: {body[:100]}",
    )  # fmt: skip
    emit(session, "inquiry.received", payload(inquiry), customer_id=inquiry.customer_id, origin=actor.origin)
    return message


# --- replies, notes and changes --------------------------------------------------------------------------------


def reply(
    session: Session, *, actor: Actor, inquiry_id: int, data: ReplyCreate, now: dt.datetime | None = None
) -> InquiryMessage:
    """A reply to the customer (sent as e-mail after commit) or an internal note. Replying claims an unclaimed
    ticket; a ticket another agent holds is refused (409), as is a ticket of another team (403)."""
    from kizuna.inquiries import email_out
    from kizuna.inquiries.claims import take

    require(actor, "inquiries:write")
    inquiry = get_inquiry(session, inquiry_id)
    require_team(session, actor, inquiry)
    if inquiry.status == "closed":
        raise Conflict(
            f"inquiry {reference(inquiry.id)} is closed; reopen it before replying",
            key="error.inquiry_closed",
            params={"ref": reference(inquiry.id)},
        )
    if not data.note:
        take(session, actor, inquiry)  # the same guarded UPDATE as a claim: a held ticket answers 409
    now = now or utcnow()
    message = InquiryMessage(
        inquiry_id=inquiry.id,
        customer_id=inquiry.customer_id,
        direction="note" if data.note else "out",
        author_user_id=actor.user_id,
        author_label=user_label(session, actor.user_id) if actor.user_id else actor.label,
        body=data.body,
        created_at=now,
    )
    session.add(message)
    session.flush()
    if data.note:
        audit.record(
            session, actor=actor, action="inquiry.note", entity_type="inquiry", entity_id=inquiry.id,
            customer_id=inquiry.customer_id, summary=f"{reference(inquiry.id)}: {data.body[:100]}",
        )  # fmt: skip
        return message
    email_out.queue_reply(session, inquiry, message)
    values: dict[str, Any] = {"status": data.status or "pending"}
    if inquiry.first_responded_at is None:
        values["first_responded_at"] = now
    _set_status(session, actor, inquiry, values, event="replied", now=now)
    audit.record(
        session, actor=actor, action="inquiry.reply", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=f"{reference(inquiry.id)}: {data.body[:100]}",
    )  # fmt: skip
    emit(session, "inquiry.replied", payload(inquiry), customer_id=inquiry.customer_id, origin=actor.origin)
    return message


def _set_status(
    session: Session, actor: Actor, inquiry: Inquiry, values: dict[str, Any], *, event: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, list[Any]]:  # fmt: skip
    now = now or utcnow()
    before = inquiry.status
    new = values.get("status", before)
    if new != before:
        if new == "resolved":
            values["resolved_at"] = now
        elif new in OPEN_STATUSES and before in ("resolved", "closed"):
            values["resolved_at"] = None
        # Into pending the SLA clocks stop; out of it they run on with the due times moved forward. A due time the
        # priority change of this same update set is moved too (it was computed from the opening, pause ignored).
        changes = sla.clock_changes(inquiry, new, now)
        spell = dt.timedelta(seconds=int(changes.get("sla_paused_seconds", inquiry.sla_paused_seconds or 0)))
        spell -= dt.timedelta(seconds=inquiry.sla_paused_seconds or 0)
        for name, value in changes.items():
            if name.endswith("_due_at") and values.get(name) is not None:
                value = sla.shift(values[name], spell)
            values[name] = value
    diff = audit.apply_changes(
        session, inquiry, values, actor=actor, entity_type="inquiry", customer_id=inquiry.customer_id
    )
    if event:
        _event(session, inquiry, event, actor, now)
    if "status" in diff:
        if new == "resolved":
            _event(session, inquiry, "resolved", actor, now)
            emit(session, "inquiry.resolved", payload(inquiry), customer_id=inquiry.customer_id, origin=actor.origin)
        elif new == "closed":
            _event(session, inquiry, "closed", actor, now)
        elif before in ("resolved", "closed"):
            _event(session, inquiry, "reopened", actor, now)
    return diff


def update_inquiry(
    session: Session, *, actor: Actor, inquiry_id: int, data: InquiryUpdate, expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> Inquiry:  # fmt: skip
    """Change status, priority, category, team or subject. A ticket another agent holds is theirs to change."""
    require(actor, "inquiries:write")
    inquiry = get_inquiry(session, inquiry_id)
    check_version(inquiry.version, if_match=expected_version, body=data.version)
    require_team(session, actor, inquiry)
    if inquiry.claimed_by not in (None, actor.user_id) and not actor.can("inquiries:write_all"):
        holder = user_label(session, inquiry.claimed_by)
        raise Conflict(
            f"inquiry {reference(inquiry.id)} is claimed by {holder}; only they or a manager can change it",
            key="error.inquiry_claimed",
            params={"ref": reference(inquiry.id), "holder": holder},
        )
    values = data.model_dump(exclude_unset=True, exclude={"version", "category"})
    values = {k: v for k, v in values.items() if v is not None or k == "team_id"}
    if "category" in data.model_fields_set:
        category = find_category(session, data.category)
        values["category_id"] = category.id if category else None
    if values.get("team_id") is not None and session.get(Team, values["team_id"]) is None:
        raise ValidationError(f"team {values['team_id']} does not exist", field="team_id")
    if "priority" in values and values["priority"] != inquiry.priority:
        first_due, resolve_due = sla.due_times(values["priority"], inquiry.created_at)
        # The business time already paused still counts: the new targets start from the opening, pauses skipped.
        paused = dt.timedelta(seconds=inquiry.sla_paused_seconds or 0)
        if paused:
            first_due, resolve_due = sla.shift(first_due, paused), sla.shift(resolve_due, paused)
        values["first_response_due_at"], values["resolution_due_at"] = first_due, resolve_due
    _set_status(session, actor, inquiry, values, now=now)
    return inquiry
