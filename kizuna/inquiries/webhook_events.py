"""The inquiry desk's public webhook events: ``inquiry.created`` and ``inquiry.resolved`` (version 1).

``data`` holds the ticket as it is when the event fans out (status, priority, category, holder, SLA times) and
the customer as other events show them. Registered at import by kizuna/webhooks/events.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from kizuna.inquiries.models import Inquiry, InquiryCategory
from kizuna.outbox.registry import Delivery
from kizuna.webhooks.events import EventType, customer_of, register

_FIELDS = (
    "id", "subject", "status", "priority", "channel", "category_id", "team_id", "claimed_by", "created_at",
    "first_responded_at", "resolved_at", "first_response_due_at", "resolution_due_at", "sla_paused_at",
    "sla_paused_seconds", "pending_seconds",
)  # fmt: skip


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _inquiry_event(session: Session, delivery: Delivery) -> dict[str, Any]:
    inquiry_id = delivery.payload.get("inquiry_id")
    inquiry = session.get(Inquiry, inquiry_id) if isinstance(inquiry_id, int) else None
    shown: dict[str, Any] | None = None
    if inquiry is not None:
        shown = {name: _plain(getattr(inquiry, name)) for name in _FIELDS}
        shown["reference"] = delivery.payload.get("reference")
        category = session.get(InquiryCategory, inquiry.category_id) if inquiry.category_id else None
        shown["category"] = category.name if category else None
    customer_id = delivery.customer_id if delivery.customer_id is not None else delivery.payload.get("customer_id")
    return {
        "inquiry_id": inquiry_id,
        "inquiry": shown,
        "customer_id": customer_id,
        "customer": customer_of(session, customer_id),
    }


for _event in (
    EventType(
        "inquiry.created", "inquiry.created", "An inquiry (ticket) was opened.", "問い合わせが起票された",
        _inquiry_event,
    ),
    EventType(
        "inquiry.resolved", "inquiry.resolved", "An inquiry was resolved.", "問い合わせが解決された", _inquiry_event
    ),
):  # fmt: skip
    register(_event)
