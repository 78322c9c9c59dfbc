"""What the desk's pages show, read in one place: the queue's rows and a ticket with its thread, the customer's
360 summary, the holder, the macros and the choices of its forms (so the views import no other domain's models).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.customers.models import Customer
from kizuna.customers.schemas import CustomerSummary
from kizuna.customers.summary import customer_summary
from kizuna.db import utcnow
from kizuna.inquiries import queues, service, setup, sla
from kizuna.inquiries.models import PRIORITIES, STATUSES, Inquiry, InquiryCategory, InquiryMacro, InquiryMessage
from kizuna.messaging.models import Message
from kizuna.sales.models import Team

__all__ = ["PRIORITIES", "STATUSES", "TicketPage", "queue_rows", "setup_page", "ticket_page"]


@dataclass(frozen=True)
class Row:
    inquiry: Inquiry
    reference: str
    customer_name: str
    category: str
    holder: str
    overdue: bool
    due_at: dt.datetime | None
    sla_paused: bool = False


def _names(session: Session, model: Any, ids: set[int], label: Any) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {row.id: label(row) for row in session.scalars(select(model).where(model.id.in_(sorted(ids))))}


def _user_name(u: User) -> str:
    return u.name or u.email


def _category_name(lang: str) -> Any:
    return lambda c: (c.name_en or c.name) if lang == "en" else c.name


def queue_rows(session: Session, *, actor: Actor, tab: str, lang: str, limit: int = 200) -> list[Row]:
    tickets = queues.queue(session, actor=actor, tab=tab, limit=limit)
    now = utcnow()
    customers = _names(
        session, Customer, {t.customer_id for t in tickets}, lambda c: c.full_name or c.email or f"#{c.id}"
    )  # type: ignore[arg-type]
    categories = _names(session, InquiryCategory, {t.category_id for t in tickets}, _category_name(lang))  # type: ignore[arg-type]
    users = _names(session, User, {t.claimed_by for t in tickets}, _user_name)  # type: ignore[arg-type]
    return [
        Row(
            inquiry=t,
            reference=service.reference(t.id),
            customer_name=customers.get(t.customer_id or 0, ""),
            category=categories.get(t.category_id or 0, ""),
            holder=users.get(t.claimed_by or 0, ""),
            overdue=service.is_overdue(t, now),
            due_at=t.first_response_due_at if t.first_responded_at is None else t.resolution_due_at,
            sla_paused=t.sla_paused_at is not None,
        )
        for t in tickets
    ]


@dataclass(frozen=True)
class TicketPage:
    inquiry: Inquiry
    reference: str
    messages: list[InquiryMessage]
    customer: Customer | None
    summary: CustomerSummary | None
    other_tickets: int
    category: str
    team: str
    holder: str
    mine: bool
    overdue: bool
    macros: list[InquiryMacro]
    categories: list[tuple[int, str]]
    teams: list[tuple[int, str]]
    can_work: bool
    sla_paused: bool = False
    # Business minutes the SLA has been paused, the running spell included.
    paused_minutes: int = 0
    # A reply's mail as the sender last left it (queued, sent, failed, skipped, held), by thread message id.
    deliveries: dict[int, str] = field(default_factory=dict)


def ticket_page(session: Session, *, actor: Actor, inquiry_id: int, lang: str) -> TicketPage:
    require(actor, "inquiries:read")
    inquiry = service.get_inquiry(session, inquiry_id)
    messages = list(
        session.scalars(
            select(InquiryMessage)
            .where(InquiryMessage.inquiry_id == inquiry.id)
            .order_by(InquiryMessage.created_at, InquiryMessage.id)
        )
    )
    outgoing = {m.outgoing_message_id: m.id for m in messages if m.outgoing_message_id is not None}
    deliveries = {
        outgoing[message_id]: status
        for message_id, status in session.execute(
            select(Message.id, Message.status).where(Message.id.in_(sorted(outgoing)))
        )
    } if outgoing else {}  # fmt: skip
    customer = session.get(Customer, inquiry.customer_id) if inquiry.customer_id else None
    summary = None
    others = 0
    if customer is not None:
        owner = session.get(User, customer.owner_id) if customer.owner_id else None
        summary = customer_summary(session, customer.id, owner_name=_user_name(owner) if owner else None)
        others = (
            session.scalar(
                select(func.count())
                .select_from(Inquiry)
                .where(Inquiry.customer_id == customer.id, Inquiry.id != inquiry.id)
            )
            or 0
        )
    name = _category_name(lang)
    category = session.get(InquiryCategory, inquiry.category_id) if inquiry.category_id else None
    team = session.get(Team, inquiry.team_id) if inquiry.team_id else None
    holder = session.get(User, inquiry.claimed_by) if inquiry.claimed_by else None
    return TicketPage(
        deliveries=deliveries,
        inquiry=inquiry,
        reference=service.reference(inquiry.id),
        messages=messages,
        customer=customer,
        summary=summary,
        other_tickets=others,
        category=name(category) if category else "",
        team=team.name if team else "",
        holder=_user_name(holder) if holder else "",
        mine=inquiry.claimed_by is not None and inquiry.claimed_by == actor.user_id,
        overdue=service.is_overdue(inquiry),
        macros=setup.list_macros(session),
        categories=[(c.id, name(c)) for c in setup.list_categories(session, active_only=True)],
        teams=[(t.id, t.name) for t in session.scalars(select(Team).order_by(Team.name))],
        can_work=actor.can("inquiries:write"),
        sla_paused=inquiry.sla_paused_at is not None,
        paused_minutes=int(sla.paused_for(inquiry, utcnow()).total_seconds() // 60),
    )


def setup_page(session: Session, *, actor: Actor) -> dict[str, Any]:
    require(actor, "inquiries:manage")
    return {
        "categories": setup.list_categories(session),
        "macros": setup.list_macros(session),
        "teams": [(t.id, t.name) for t in session.scalars(select(Team).order_by(Team.name))],
    }
