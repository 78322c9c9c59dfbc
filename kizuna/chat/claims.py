"""Taking, releasing and closing a live chat: no double handling, as with the desk's tickets.

A take is one guarded UPDATE (``agent_user_id IS NULL OR agent_user_id = me``, not closed), the approach of
``kizuna.inquiries.claims``: of two agents racing for a chat exactly one changes the row and the other gets a
409 naming the holder, on SQLite and PostgreSQL alike (PostgreSQL re-checks the condition on the row the first
transaction committed). An agent's reply takes the same path (``service.agent_reply``), so a chat another agent
holds cannot be answered either. A taken chat is ``live`` (the bot no longer answers it); a released one waits
for a person again. Its holder, or a desk lead (``inquiries:write_all``), may release or close it.
"""

from __future__ import annotations

from sqlalchemy import case, func, or_, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.chat.models import Chat
from kizuna.db import take_write_lock, utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.inquiries.service import user_label

# The desk lead's right over every ticket is also the right over every chat (roles as the desk's).
LEAD = "inquiries:write_all"


def _chat(session: Session, chat_id: int) -> Chat:
    chat = session.get(Chat, chat_id)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found")
    return chat


def _closed(chat: Chat) -> Conflict:
    return Conflict(f"chat {chat.id} is closed", key="error.chat_closed")


def _held(session: Session, chat: Chat, what: str) -> Conflict:
    holder = user_label(session, chat.agent_user_id)
    return Conflict(
        f"another agent, {holder}, has chat {chat.id}; {what}",
        key="error.chat_held",
        params={"holder": holder},
    )


def take(session: Session, actor: Actor, chat: Chat) -> bool:
    """Make ``actor`` the chat's agent unless another one has it; answers whether the chat changed hands."""
    if actor.user_id is None:
        raise ValidationError("only a signed-in user can take a chat", field="agent_user_id")
    # SQLite: two agents' UPDATEs at once could fail the second with "database is locked" instead of its 409.
    take_write_lock(session.connection())
    now = utcnow()
    table = Chat.__table__
    result = session.execute(
        update(table)
        .where(
            table.c.id == chat.id,
            table.c.status != "closed",
            or_(table.c.agent_user_id.is_(None), table.c.agent_user_id == actor.user_id),
        )
        .values(
            agent_user_id=actor.user_id,
            status="live",
            # A chat taken from the bot waits for a person from now on (the wait the desk shows).
            handed_over_at=func.coalesce(table.c.handed_over_at, now),
            version=case((table.c.agent_user_id == actor.user_id, table.c.version), else_=table.c.version + 1),
            updated_at=now,
        )
    )
    before = chat.version
    session.refresh(chat)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        changed = chat.version != before
        if changed and chat.inquiry_id is not None:
            _take_ticket(session, actor, chat.inquiry_id)
        return changed
    if chat.status == "closed":
        raise _closed(chat)
    raise _held(session, chat, "it is theirs until they release it")


def _take_ticket(session: Session, actor: Actor, inquiry_id: int) -> None:
    """The inquiry opened at the hand-over goes with its chat, so that nobody answers it by e-mail while the chat
    is live. A ticket another agent already holds refuses the take (409 naming them, and the caller's
    transaction, chat included, rolls back); a closed ticket stays closed and does not stop the chat."""
    from kizuna.inquiries import claims as tickets
    from kizuna.inquiries.models import Inquiry
    from kizuna.inquiries.service import reference

    inquiry = session.get(Inquiry, inquiry_id)
    if inquiry is None or inquiry.status == "closed" or inquiry.claimed_by == actor.user_id:
        return
    tickets.take(session, actor, inquiry)
    audit.record(
        session, actor=actor, action="inquiry.claim", entity_type="inquiry", entity_id=inquiry.id,
        customer_id=inquiry.customer_id, summary=reference(inquiry.id),
    )  # fmt: skip


def claim(session: Session, *, actor: Actor, chat_id: int) -> Chat:
    """Take the chat before replying; a 409 naming the holder when another agent has it, or when it is closed."""
    require(actor, "chats:answer")
    chat = _chat(session, chat_id)
    if take(session, actor, chat):
        audit.record(
            session, actor=actor, action="chat.claim", entity_type="chat", entity_id=chat.id,
            customer_id=chat.customer_id, summary=chat.public_id,
        )  # fmt: skip
    return chat


def _guard(actor: Actor, table) -> list:  # noqa: ANN001
    guard = [table.c.status != "closed"]
    if not actor.can(LEAD):
        guard.append(or_(table.c.agent_user_id.is_(None), table.c.agent_user_id == actor.user_id))
    return guard


def release(session: Session, *, actor: Actor, chat_id: int) -> Chat:
    """Give the chat back to the desk: it waits for a person again. Only its holder or a desk lead may."""
    require(actor, "chats:answer")
    chat = _chat(session, chat_id)
    if chat.agent_user_id is None:
        return chat  # nobody holds it: nothing to give back
    table = Chat.__table__
    take_write_lock(session.connection())
    result = session.execute(
        update(table)
        .where(table.c.id == chat.id, table.c.agent_user_id.is_not(None), *_guard(actor, table))
        .values(agent_user_id=None, status="waiting_agent", version=table.c.version + 1, updated_at=utcnow())
    )
    session.refresh(chat)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if chat.status == "closed":
            raise _closed(chat)
        if chat.agent_user_id is None:
            return chat
        raise _held(session, chat, "only they or a desk lead can release it")
    audit.record(
        session, actor=actor, action="chat.release", entity_type="chat", entity_id=chat.id,
        customer_id=chat.customer_id, summary=chat.public_id,
    )  # fmt: skip
    return chat


def close(session: Session, *, actor: Actor, chat_id: int) -> Chat:
    """End the chat (the visitor can send no more). Its holder, anyone while nobody holds it, or a desk lead."""
    require(actor, "chats:answer")
    chat = _chat(session, chat_id)
    table = Chat.__table__
    take_write_lock(session.connection())
    result = session.execute(
        update(table)
        .where(table.c.id == chat.id, *_guard(actor, table))
        .values(status="closed", version=table.c.version + 1, updated_at=utcnow())
    )
    session.refresh(chat)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if chat.status == "closed":
            raise _closed(chat)
        raise _held(session, chat, "only they or a desk lead can close it")
    audit.record(
        session, actor=actor, action="chat.close", entity_type="chat", entity_id=chat.id,
        customer_id=chat.customer_id, summary=chat.public_id,
    )  # fmt: skip
    return chat
