"""What the desk's chat tab shows, read in one place: chats waiting for a person (longest-waiting first), chats
in progress (whose visitor waits longest first), the bot's latest, each with its holder and how long the
visitor has waited; and the number of waiting chats the navigation's badge polls."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from kizuna.auth.models import User
from kizuna.auth.permissions import Actor, require
from kizuna.chat.models import Chat, ChatMessage
from kizuna.db import utcnow


@dataclass(frozen=True)
class ChatRow:
    chat: Chat
    holder: str
    mine: bool
    # Since when the visitor waits for a person: the hand-over until an agent replied, then their first message
    # after the agent's last reply; None when the agent spoke last.
    waiting_since: dt.datetime | None
    wait_minutes: int | None


@dataclass(frozen=True)
class DeskChats:
    waiting: list[ChatRow]
    live: list[ChatRow]
    bot: list[ChatRow]
    can_answer: bool


def waiting_count(session: Session, *, actor: Actor) -> int:
    """How many chats wait for a person nobody has taken yet (the badge)."""
    require(actor, "chats:read")
    return session.scalar(select(func.count()).select_from(Chat).where(Chat.status == "waiting_agent")) or 0


def _unanswered_since(session: Session, chat_ids: list[int]) -> dict[int, dt.datetime | None]:
    """Per chat: its first visitor message after the last agent message (only chats an agent answered)."""
    if not chat_ids:
        return {}
    agent = aliased(ChatMessage)
    last_agent = (
        select(agent.chat_id, func.max(agent.id).label("last_id"))
        .where(agent.author == "agent", agent.chat_id.in_(chat_ids))
        .group_by(agent.chat_id)
        .subquery()
    )
    answered = dict.fromkeys(session.scalars(select(last_agent.c.chat_id)), None)
    rows = session.execute(
        select(ChatMessage.chat_id, func.min(ChatMessage.created_at))
        .join(last_agent, and_(last_agent.c.chat_id == ChatMessage.chat_id, ChatMessage.id > last_agent.c.last_id))
        .where(ChatMessage.author == "customer")
        .group_by(ChatMessage.chat_id)
    ).all()
    return answered | {chat_id: since for chat_id, since in rows}


def desk_chats(session: Session, *, actor: Actor, now: dt.datetime | None = None) -> DeskChats:
    require(actor, "chats:read")
    now = now or utcnow()
    open_chats = list(
        session.scalars(select(Chat).where(Chat.status.in_(("waiting_agent", "live"))).order_by(Chat.id).limit(500))
    )
    bot = list(
        session.scalars(select(Chat).where(Chat.status == "bot").order_by(Chat.last_message_at.desc()).limit(50))
    )
    answered = _unanswered_since(session, [c.id for c in open_chats])
    holders = {c.agent_user_id for c in open_chats if c.agent_user_id}
    names = (
        {u.id: u.name or u.email for u in session.scalars(select(User).where(User.id.in_(sorted(holders))))}
        if holders
        else {}
    )

    def row(chat: Chat) -> ChatRow:
        since = answered.get(chat.id, chat.handed_over_at or chat.created_at)
        minutes = None if since is None else max(0, int((now - since).total_seconds() // 60))
        return ChatRow(
            chat=chat,
            holder=names.get(chat.agent_user_id or 0, ""),
            mine=chat.agent_user_id is not None and chat.agent_user_id == actor.user_id,
            waiting_since=since,
            wait_minutes=minutes,
        )

    rows = [row(c) for c in open_chats]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)

    def longest_first(r: ChatRow) -> tuple[dt.datetime, int]:
        return (r.waiting_since or far, r.chat.id)

    return DeskChats(
        waiting=sorted((r for r in rows if r.chat.status == "waiting_agent"), key=longest_first),
        live=sorted((r for r in rows if r.chat.status == "live"), key=longest_first),
        bot=[ChatRow(chat=c, holder="", mine=False, waiting_since=None, wait_minutes=None) for c in bot],
        can_answer=actor.can("chats:answer"),
    )
