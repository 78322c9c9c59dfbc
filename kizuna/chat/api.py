"""The chat's HTTP edges: the public API the widget calls (/chat/v1, no sign-in: the visitor holds the chat's
secret), the agents' API (/api/v1/chats), the allowed sites, and the widget script itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse

from kizuna.auth.permissions import require
from kizuna.chat import claims, cors, desk, service
from kizuna.chat.models import Chat, ChatMessage, ChatOrigin
from kizuna.chat.schemas import (
    AgentReply,
    ChatContact,
    ChatRead,
    ChatStart,
    ChatStarted,
    ChatState,
    HandOverIn,
    MessageIn,
    MessageRead,
    OriginIn,
    OriginRead,
)
from kizuna.config import get_settings
from kizuna.web.deps import DB, APIActor, client_address

public = APIRouter(prefix="/chat/v1", tags=["chat (public)"])
router = APIRouter(prefix="/chats", tags=["chats"])
widget = APIRouter(include_in_schema=False)
WIDGET = Path(__file__).parent / "static" / "kizuna-chat.js"
Secret = Annotated[str | None, Header(alias="X-Chat-Secret", description="the secret given when the chat started")]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _state(chat: Chat, messages: list[ChatMessage]) -> ChatState:
    return ChatState(id=chat.public_id, status=chat.status, messages=[MessageRead.model_validate(m) for m in messages])


@public.post("/sessions", response_model=ChatStarted, status_code=201)
def start_chat(request: Request, session: DB, data: ChatStart | None = None) -> ChatStarted:
    """Start a chat; keep ``secret`` and send it as ``X-Chat-Secret`` with every later call."""
    request.app.state.chat_limits.starts.hit(
        client_address(request), get_settings().chat_starts_per_minute, "chats started"
    )
    chat, secret, messages = service.start_chat(
        session, data=data or ChatStart(), site=(request.headers.get("origin") or "")[:300] or None
    )
    session.commit()
    return ChatStarted(
        id=chat.public_id, secret=secret, status=chat.status,
        messages=[MessageRead.model_validate(m) for m in messages],
    )  # fmt: skip


@public.post("/sessions/{chat_id}/messages", response_model=ChatState, status_code=201)
def post_message(chat_id: str, data: MessageIn, request: Request, session: DB, secret: Secret = None) -> ChatState:
    """The visitor's message; the answer holds it and the bot's reply (with the articles it used)."""
    chat = service.visitor_chat(session, chat_id, secret)
    request.app.state.chat_limits.messages.hit(chat.public_id, get_settings().chat_messages_per_minute, "chat messages")
    added = service.post_message(session, chat=chat, data=data, link_base=_base(request))
    session.commit()
    return _state(chat, added)


@public.get("/sessions/{chat_id}/messages", response_model=ChatState)
def list_messages(
    chat_id: str, session: DB, secret: Secret = None, after: Annotated[int | None, Query(ge=0)] = None
) -> ChatState:
    """Messages after the id ``after`` (all without it): the widget polls this for agents' replies."""
    chat = service.visitor_chat(session, chat_id, secret)
    return _state(chat, service.messages_after(session, chat, after))


@public.post("/sessions/{chat_id}/contact", response_model=ChatState)
def give_contact(chat_id: str, data: ChatContact, session: DB, secret: Secret = None) -> ChatState:
    chat = service.visitor_chat(session, chat_id, secret)
    service.give_contact(session, chat=chat, data=data)
    session.commit()
    return _state(chat, [])


@public.post("/sessions/{chat_id}/handover", response_model=ChatState)
def ask_for_person(chat_id: str, session: DB, secret: Secret = None, data: HandOverIn | None = None) -> ChatState:
    """The visitor asks for a person (the widget's button)."""
    chat = service.visitor_chat(session, chat_id, secret)
    added = service.request_person(session, chat=chat)
    session.commit()
    return _state(chat, added)


@widget.get("/js/kizuna-chat.js")
def widget_script() -> FileResponse:
    """The chat widget: one script tag on a site, no build step."""
    headers = {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
    return FileResponse(WIDGET, media_type="text/javascript; charset=utf-8", headers=headers)


# ---- agents ------------------------------------------------------------------------------------------------


@router.get("", response_model=list[ChatRead])
def open_chats(session: DB, actor: APIActor) -> list[Chat]:
    """Chats waiting for an agent first (longest waiting first), then live ones, then the bot's."""
    return service.open_chats(session, actor=actor)


@router.get("/{chat_id}/messages", response_model=list[MessageRead])
def chat_messages(
    chat_id: int, session: DB, actor: APIActor, after: Annotated[int | None, Query(ge=0)] = None
) -> list[ChatMessage]:
    require(actor, "chats:read")
    return service.messages_after(session, service.get_chat(session, chat_id), after)


@router.post("/{chat_id}/messages", response_model=MessageRead, status_code=201)
def reply(chat_id: int, data: AgentReply, session: DB, actor: APIActor) -> ChatMessage:
    message = service.agent_reply(session, actor=actor, chat_id=chat_id, data=data)
    session.commit()
    return message


@router.get("/waiting")
def waiting(session: DB, actor: APIActor) -> dict[str, int]:
    """How many chats wait for a person nobody has taken yet."""
    return {"waiting": desk.waiting_count(session, actor=actor)}


@router.post("/{chat_id}/claim", response_model=ChatRead)
def claim(chat_id: int, session: DB, actor: APIActor) -> Chat:
    """Take the chat before replying; 409 naming the holder when another agent has it (or it is closed)."""
    chat = claims.claim(session, actor=actor, chat_id=chat_id)
    session.commit()
    return chat


@router.post("/{chat_id}/release", response_model=ChatRead)
def release(chat_id: int, session: DB, actor: APIActor) -> Chat:
    """Give the chat back: it waits for a person again (its holder, or a desk lead)."""
    chat = claims.release(session, actor=actor, chat_id=chat_id)
    session.commit()
    return chat


@router.post("/{chat_id}/close", response_model=ChatRead)
def close(chat_id: int, session: DB, actor: APIActor) -> Chat:
    chat = service.close_chat(session, actor=actor, chat_id=chat_id)
    session.commit()
    return chat


@router.get("/sites", response_model=list[OriginRead])
def sites(session: DB, actor: APIActor) -> list[ChatOrigin]:
    require(actor, "chats:manage")
    return service.list_origins(session)


@router.post("/sites", response_model=OriginRead, status_code=201)
def add_site(data: OriginIn, session: DB, actor: APIActor) -> ChatOrigin:
    row = service.add_origin(session, actor=actor, origin=data.origin)
    session.commit()
    cors.forget()
    return row
