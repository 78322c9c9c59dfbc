"""Website chats: a visitor's session (anonymous until they give an e-mail) and its messages."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Timestamped, UTCDateTime, Versioned, utcnow

# bot: the FAQ bot answers; waiting_agent: handed over, no person has replied yet; live: an agent replied;
# closed: ended by an agent.
STATUSES = ("bot", "waiting_agent", "live", "closed")
AUTHORS = ("customer", "bot", "agent")


class Chat(Timestamped, Versioned, Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('bot', 'waiting_agent', 'live', 'closed')", name="status"),
        Index("ix_chat_sessions_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What the visitor's browser names the chat by; the integer id stays inside Kizuna.
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    # SHA-256 of the visitor's session secret: the secret itself is only ever in the visitor's browser.
    secret_hash: Mapped[str] = mapped_column(String(64))
    # Deleting (erasing) a customer deletes their chats and so the messages: the conversation is theirs.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="ja")
    status: Mapped[str] = mapped_column(String(16), default="bot")
    site: Mapped[str | None] = mapped_column(String(300))
    handover_reason: Mapped[str | None] = mapped_column(String(32))
    handed_over_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The inquiry opened at hand-over (kizuna.inquiries); no foreign key so the chat does not depend on it.
    inquiry_id: Mapped[int | None] = mapped_column()
    last_message_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("author IN ('customer', 'bot', 'agent')", name="author"),
        Index("ix_chat_messages_chat_id_id", "chat_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    # The articles the bot's answer came from: [{id, title, snippet, url, confidence}].
    sources: Mapped[list] = mapped_column(JSONType, default=list)
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatOrigin(Base):
    """A website an admin allows to embed the chat widget (its scheme://host[:port], for CORS)."""

    __tablename__ = "chat_origins"

    id: Mapped[int] = mapped_column(primary_key=True)
    origin: Mapped[str] = mapped_column(String(300), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatRateCount(Base):
    """Requests one key (``start:<address>``, ``message:<chat>``) made in one fixed window."""

    __tablename__ = "chat_rate_limits"
    __table_args__ = (Index("ix_chat_rate_limits_window_start", "window_start"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Unix seconds at which the window starts (a multiple of its length).
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer, default=0)
