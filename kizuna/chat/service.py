"""Website chats: a visitor talks to the FAQ bot; when the bot is not confident or the visitor asks for a
person, the chat is handed over (``hand_over``) and agents answer it from the desk.

The visitor is known only by a random session secret their browser holds (stored here as its SHA-256); a
chat is linked to a customer when the visitor gives an e-mail address a customer has.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.chat.models import Chat, ChatMessage, ChatOrigin
from kizuna.chat.schemas import AgentReply, ChatContact, ChatStart, MessageIn
from kizuna.customers import identities
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, PermissionDenied, ValidationError
from kizuna.knowledge.answer import answer

VISITOR = Actor(label="chat:visitor", role="viewer", origin="chat")
BOT = Actor.system("chat-bot", origin="chat")

# What the bot says, in the chat's language. Kept here (not in the UI catalogs): the widget shows them as sent.
TEXTS = {
    "ja": {
        "greeting": "こんにちは。ご質問をどうぞ。担当者と話したいときは「担当者」と入力してください。",
        "found": "こちらの記事がお役に立つかもしれません。",
        "handover_asked": "担当者におつなぎします。このままお待ちください（受付時間外は翌営業日にご返信します）。",
        "handover_unsure": "申し訳ありません、お答えできる記事が見つかりませんでした。担当者におつなぎします。",
        "waiting": "担当者に伝えました。返信までこのままお待ちください。",
    },
    "en": {
        "greeting": 'Hello! Ask us anything. Type "agent" to talk to a person.',
        "found": "These articles may help:",
        "handover_asked": "Connecting you to a person. Please stay here (outside office hours we reply the next "
        "business day).",
        "handover_unsure": "Sorry, I could not find an article that answers this. Connecting you to a person.",
        "waiting": "Your message was passed to our team. Please wait for their reply.",
    },
}


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _add(session: Session, chat: Chat, author: str, text: str, **extra: Any) -> ChatMessage:
    message = ChatMessage(chat_id=chat.id, author=author, text=text, sources=extra.pop("sources", []), **extra)
    session.add(message)
    chat.last_message_at = utcnow()
    return message


def start_chat(session: Session, *, data: ChatStart, site: str | None = None) -> tuple[Chat, str, list[ChatMessage]]:
    """A new chat with the bot's greeting; returns the chat, the visitor's secret (shown once) and messages."""
    secret = secrets.token_urlsafe(32)
    chat = Chat(
        public_id=secrets.token_hex(16), secret_hash=_hash(secret), language=data.language, site=site,
        status="bot",
    )  # fmt: skip
    session.add(chat)
    session.flush()
    if data.email:
        _link(session, chat, data.email, data.name)
    greeting = _add(session, chat, "bot", TEXTS[chat.language]["greeting"])
    session.flush()
    return chat, secret, [greeting]


def visitor_chat(session: Session, public_id: str, secret: str | None) -> Chat:
    """The chat named ``public_id`` if ``secret`` is its session secret."""
    chat = session.scalar(select(Chat).where(Chat.public_id == public_id))
    if chat is None:
        raise NotFound(f"chat {public_id} not found")
    if not secret or not hmac.compare_digest(chat.secret_hash, _hash(secret)):
        raise PermissionDenied("wrong chat session secret (send the secret given when the chat started)")
    return chat


def _link(session: Session, chat: Chat, email: str, name: str | None) -> None:
    chat.email = email
    chat.name = name or chat.name
    chat.customer_id = identities.owner(session, "email", email)


def give_contact(session: Session, *, chat: Chat, data: ChatContact) -> Chat:
    """The visitor's e-mail (and name): links the chat to the customer with that address, if there is one."""
    _link(session, chat, data.email, data.name)
    if chat.status != "bot":
        # A visitor often leaves the address only after the hand-over: the ticket opens now.
        open_ticket(session, chat)
    audit.record(
        session, actor=VISITOR, action="chat.contact", entity_type="chat", entity_id=chat.id,
        customer_id=chat.customer_id, summary=chat.email or "",
    )  # fmt: skip
    return chat


def post_message(session: Session, *, chat: Chat, data: MessageIn, link_base: str = "") -> list[ChatMessage]:
    """The visitor's message and, while the bot has the chat, the bot's answer (or its hand-over notice)."""
    if chat.status == "closed":
        raise Conflict("this chat is closed; start a new one", key="error.chat_closed")
    added = [_add(session, chat, "customer", data.text)]
    if chat.status != "bot":
        # A person has the chat: the message waits for them; no bot reply.
        session.flush()
        return added
    result = answer(session, data.text, link_base=link_base)
    texts = TEXTS[chat.language]
    if result.hand_over:
        reason = "asked" if result.asks_for_person else "not_confident"
        added.append(_add(session, chat, "bot", texts["handover_asked" if reason == "asked" else "handover_unsure"]))
        session.flush()
        hand_over(session, chat.id, reason)
    else:
        sources = [s.model_dump(exclude={"confidence"}) for s in result.sources]
        added.append(_add(session, chat, "bot", texts["found"], sources=sources))
    session.flush()
    return added


def messages_after(session: Session, chat: Chat, after: int | None = None) -> list[ChatMessage]:
    query = select(ChatMessage).where(ChatMessage.chat_id == chat.id).order_by(ChatMessage.id)
    if after is not None:
        query = query.where(ChatMessage.id > after)
    return list(session.scalars(query.limit(500)))


def transcript(session: Session, chat: Chat) -> list[dict[str, Any]]:
    """The conversation as an inquiry keeps it: [{author, text, at}] oldest first (bot answers name their
    articles)."""
    rows = []
    for message in messages_after(session, chat):
        text = message.text
        if message.sources:
            text += "\n" + "\n".join(f"- {s['title']} ({s['url']})" for s in message.sources)
        rows.append({"author": message.author, "text": text, "at": message.created_at.isoformat()})
    return rows


def open_ticket(session: Session, chat: Chat, data: dict[str, Any] | None = None) -> int | None:
    """Open the inquiry of a handed-over chat, with the conversation as its transcript, once: a desk agent
    sees it in the queue (nothing missed) and its thread carries on by e-mail. A visitor nobody knows yet (no
    customer, no e-mail) gets it when they leave their address (``give_contact``). Answers the inquiry id."""
    from kizuna.inquiries.schemas import BODY_MAX, InquiryCreate
    from kizuna.inquiries.service import create_inquiry

    if chat.inquiry_id is not None or (chat.customer_id is None and not chat.email):
        return chat.inquiry_id
    data = dict(data or _ticket_data(session, chat))
    data.update(customer_id=chat.customer_id, email=chat.email, name=chat.name)
    data["body"] = data["body"][:BODY_MAX]
    # The newest lines when a long chat exceeds what a ticket keeps.
    data["transcript"] = [{**line, "text": line["text"][:BODY_MAX]} for line in data["transcript"][-500:]]
    inquiry = create_inquiry(session, actor=BOT, data=InquiryCreate(**data))
    chat.inquiry_id = inquiry.id
    chat.customer_id = chat.customer_id or inquiry.customer_id
    session.flush()
    return inquiry.id


def _ticket_data(session: Session, chat: Chat) -> dict[str, Any]:
    lines = transcript(session, chat)
    first = next((m["text"] for m in lines if m["author"] == "customer"), "")
    return {
        "subject": (("チャット: " if chat.language == "ja" else "Chat: ") + (first[:80] or chat.public_id))[:300],
        "body": first or "(chat)",
        "channel": "chat",
        "customer_id": chat.customer_id,
        "email": chat.email,
        "name": chat.name,
        "transcript": lines,
    }


def hand_over(session: Session, chat_id: int, reason: str) -> dict[str, Any]:
    """Hand the chat to a person: it waits for an agent, and an inquiry is opened with the conversation.

    ``reason`` is ``asked`` (the visitor asked for a person) or ``not_confident`` (no article fits). Returns
    the inquiry input (subject, body, channel, customer or e-mail, transcript). Handing over a chat that
    already waits or is live changes nothing and opens no second inquiry.
    """
    chat = session.get(Chat, chat_id)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found")
    if reason not in ("asked", "not_confident"):
        raise ValidationError(f"unknown hand-over reason {reason!r}", field="reason")
    if chat.status != "bot":
        return {}
    chat.status = "waiting_agent"
    chat.handover_reason = reason
    chat.handed_over_at = utcnow()
    session.flush()
    data = _ticket_data(session, chat)
    open_ticket(session, chat, data)
    audit.record(
        session, actor=BOT, action="chat.hand_over", entity_type="chat", entity_id=chat.id,
        customer_id=chat.customer_id, details={"reason": reason}, summary=chat.public_id,
    )  # fmt: skip
    return data


def request_person(session: Session, *, chat: Chat) -> list[ChatMessage]:
    """The widget's "talk to a person" button: the same hand-over as typing 担当者."""
    if chat.status == "closed":
        raise Conflict("this chat is closed; start a new one", key="error.chat_closed")
    if chat.status != "bot":
        return []
    message = _add(session, chat, "bot", TEXTS[chat.language]["handover_asked"])
    session.flush()
    hand_over(session, chat.id, "asked")
    return [message]


# ---- agents ------------------------------------------------------------------------------------------------


def get_chat(session: Session, chat_id: int) -> Chat:
    chat = session.get(Chat, chat_id)
    if chat is None:
        raise NotFound(f"chat {chat_id} not found")
    return chat


def open_chats(session: Session, *, actor: Actor) -> list[Chat]:
    """Chats waiting for an agent (longest-waiting first), then live ones, then the bot's latest 50."""
    require(actor, "chats:read")
    order = {"waiting_agent": 0, "live": 1, "bot": 2}
    rows = list(
        session.scalars(select(Chat).where(Chat.status.in_(order)).order_by(Chat.last_message_at.desc()).limit(200))
    )
    return sorted(rows, key=lambda c: (order[c.status], c.last_message_at if c.status == "waiting_agent" else 0))


def agent_reply(session: Session, *, actor: Actor, chat_id: int, data: AgentReply) -> ChatMessage:
    """An agent's reply. The agent takes the chat first (``claims.take``: a 409 naming the holder when another
    agent has it); the chat is live and the bot stops answering it."""
    from kizuna.chat import claims

    chat = claims.claim(session, actor=actor, chat_id=chat_id)
    message = _add(session, chat, "agent", data.text, agent_user_id=actor.user_id)
    session.flush()
    audit.record(
        session, actor=actor, action="chat.reply", entity_type="chat", entity_id=chat.id,
        customer_id=chat.customer_id, summary=data.text[:80],
    )  # fmt: skip
    return message


def close_chat(session: Session, *, actor: Actor, chat_id: int) -> Chat:
    """End the chat; see ``claims.close`` for who may."""
    from kizuna.chat import claims

    return claims.close(session, actor=actor, chat_id=chat_id)


# ---- sites that may embed the widget -------------------------------------------------------------------------


def normal_origin(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValidationError(f"'{raw}' is not a site origin such as https://shop.example", field="origin")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def list_origins(session: Session) -> list[ChatOrigin]:
    return list(session.scalars(select(ChatOrigin).order_by(ChatOrigin.origin)))


def allowed_origins(session: Session) -> set[str]:
    return set(session.scalars(select(ChatOrigin.origin)))


def add_origin(session: Session, *, actor: Actor, origin: str) -> ChatOrigin:
    require(actor, "chats:manage")
    value = normal_origin(origin)
    if value in allowed_origins(session):
        raise Conflict(f"{value} is already allowed", field="origin")
    row = ChatOrigin(origin=value)
    session.add(row)
    session.flush()
    audit.record(session, actor=actor, action="chat_origin.create", entity_type="chat_origin", entity_id=row.id,
                 summary=value)  # fmt: skip
    return row


def remove_origin(session: Session, *, actor: Actor, origin_id: int) -> None:
    require(actor, "chats:manage")
    row = session.get(ChatOrigin, origin_id)
    if row is None:
        raise NotFound(f"allowed site {origin_id} not found")
    audit.record(session, actor=actor, action="chat_origin.delete", entity_type="chat_origin", entity_id=row.id,
                 summary=row.origin)  # fmt: skip
    session.delete(row)
