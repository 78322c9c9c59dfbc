"""A reply as e-mail: one service message through kizuna/messaging, queued in the reply's transaction.

The mail's Message-ID is fixed when the message row is written (from its ``delivery_key``, before any attempt)
and kept on the thread's message, so the customer's answer (``In-Reply-To``) finds the ticket again, and a retry
after a crash carries the same Message-ID. The subject carries ``[#KZ-123]`` for mail clients that drop headers.
The reply's text travels in the message's ``context`` and the content only names it, so that nothing an agent
types is ever read as a template.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.customers.models import Customer
from kizuna.inquiries.models import Inquiry, InquiryMessage
from kizuna.messaging import footer, settings
from kizuna.messaging.email import message_id
from kizuna.messaging.queue import NewMessage, queue


def subject_for(inquiry: Inquiry) -> str:
    from kizuna.inquiries.service import REFERENCE, reference

    subject = REFERENCE.sub("", inquiry.subject).strip()
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    return f"[#{reference(inquiry.id)}] {subject}"


def _address(session: Session, inquiry: Inquiry) -> str | None:
    if inquiry.reply_to:
        return inquiry.reply_to
    if inquiry.customer_id is None:
        return None
    return session.scalar(select(Customer.email).where(Customer.id == inquiry.customer_id))


def _thread_ids(session: Session, inquiry: Inquiry) -> list[str]:
    """The thread's Message-IDs, oldest first (a reply's References; the last one is its In-Reply-To)."""
    query = (
        select(InquiryMessage.email_message_id)
        .where(InquiryMessage.inquiry_id == inquiry.id, InquiryMessage.email_message_id.is_not(None))
        .order_by(InquiryMessage.created_at, InquiryMessage.id)
    )
    return [m for m in session.scalars(query) if m]


def queue_reply(session: Session, inquiry: Inquiry, message: InquiryMessage) -> None:
    """Queue the mail of an agent's reply; a ticket without any address keeps the reply in the thread only."""
    address = _address(session, inquiry)
    if not address:
        message.details = {**(message.details or {}), "not_sent": "no e-mail address"}
        return
    thread = _thread_ids(session, inquiry)
    headers: dict[str, str] = {}
    if thread:
        headers = {"In-Reply-To": thread[-1], "References": " ".join(thread[-10:])}
    support = get_settings().inquiry_email_address.strip()
    sender = {"from_address": support, "reply_to": support} if support else {}
    content = {
        "subject": "{{ context.subject }}",
        "text": "{{ context.body }}",
        "to": address,
        "headers": headers,
        **({"sender": sender} if sender else {}),
    }
    row = queue(
        session,
        NewMessage(
            key=f"inquiry:{inquiry.id}:message:{message.id}",
            customer_id=inquiry.customer_id,
            channel="email",
            kind="service",
            source="system",
            source_step=f"inquiry:{inquiry.id}",
            content=content,
            context={"subject": subject_for(inquiry), "body": message.body, "inquiry_id": inquiry.id},
        ),
    )
    if row is None:  # pragma: no cover - the key names a message created just now
        return
    domain = footer.SenderIdentity.of(settings.load(session, "email")).domain
    message.outgoing_message_id = row.id
    message.email_message_id = message_id(row.delivery_key, domain)
    session.flush()
