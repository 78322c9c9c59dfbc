"""Live chats in the UI: the desk's chat tab (/inquiries/chats: waiting first, with the wait; /chats leads there),
a chat with its messages, take / release / close and the agent's reply box, the waiting count the navigation's
badge polls, and the sites allowed to embed the widget."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.chat import claims, cors, desk, service
from kizuna.chat.schemas import AgentReply
from kizuna.customers import service as customers
from kizuna.errors import KizunaError
from kizuna.inquiries.service import user_label
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, collect, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


@router.get("/chats")
def chat_list() -> Response:
    """The chats are worked from the desk: its チャット / Chats tab."""
    return RedirectResponse("/inquiries/chats", status_code=303)


@router.get("/inquiries/chats")
def desk_chats(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    """The desk's chat tab: waiting chats (longest-waiting first), chats in progress, the bot's latest."""
    view = desk.desk_chats(session, actor=viewer.actor)
    return render(request, "chats/list.html", viewer, view=view)


@router.get("/chats/waiting.json")
def chats_waiting(session: DB, viewer: CurrentViewer) -> JSONResponse:
    """How many chats wait for a person: the navigation's badge polls this."""
    return JSONResponse({"waiting": desk.waiting_count(session, actor=viewer.actor)})


def _chat_page(
    request: Request, session: DB, viewer: Viewer, chat_id: int, form: FormState, status: int = 200,
    problem: str = "",
) -> Response:  # fmt: skip
    require(viewer.actor, "chats:read")
    chat = service.get_chat(session, chat_id)
    holder = user_label(session, chat.agent_user_id) if chat.agent_user_id else ""
    customer_name = customers.display_names(session, [chat.customer_id]).get(chat.customer_id or 0, "")
    return render(
        request, "chats/chat.html", viewer, status=status, chat=chat, form=form, problem=problem, holder=holder,
        customer_name=customer_name,
        mine=chat.agent_user_id is not None and chat.agent_user_id == viewer.actor.user_id,
        messages=service.messages_after(session, chat),
    )  # fmt: skip


@router.get("/chats/{chat_id:int}")
def chat_page(request: Request, session: DB, viewer: CurrentViewer, chat_id: int) -> Response:
    return _chat_page(request, session, viewer, chat_id, FormState(values={"text": ""}))


def _refused(
    request: Request, session: DB, viewer: Viewer, chat_id: int, exc: KizunaError, form: FormState
) -> Response:
    """The chat again with why the desk refused (another agent holds it, or it is closed), in the viewer's language."""
    session.rollback()
    if exc.status_code == 404:
        raise exc
    problem = translate_error(translator(viewer.lang), viewer.lang, exc)
    return _chat_page(request, session, viewer, chat_id, form, status=exc.status_code, problem=problem)


def _act(request: Request, session: DB, viewer: Viewer, chat_id: int, action: Any, done: str, to: str) -> Response:
    try:
        action()
    except KizunaError as exc:
        return _refused(request, session, viewer, chat_id, exc, FormState(values={"text": ""}))
    session.commit()
    return RedirectResponse(to.format(id=chat_id, done=done), status_code=303)


@router.post("/chats/{chat_id:int}/claim")
def claim(request: Request, session: DB, viewer: PostingViewer, chat_id: int) -> Response:
    actor = viewer.actor.via("ui")
    return _act(
        request, session, viewer, chat_id, lambda: claims.claim(session, actor=actor, chat_id=chat_id), "claimed",
        "/chats/{id}?done={done}",
    )  # fmt: skip


@router.post("/chats/{chat_id:int}/release")
def release(request: Request, session: DB, viewer: PostingViewer, chat_id: int) -> Response:
    actor = viewer.actor.via("ui")
    return _act(
        request, session, viewer, chat_id, lambda: claims.release(session, actor=actor, chat_id=chat_id),
        "released", "/chats/{id}?done={done}",
    )  # fmt: skip


@router.post("/chats/{chat_id:int}/reply")
def reply(request: Request, session: DB, viewer: PostingViewer, posted: Posted, chat_id: int) -> Response:
    state = read_form(posted, ("text",))
    actor = viewer.actor.via("ui")
    try:
        data = AgentReply(text=state.values["text"])
    except pydantic.ValidationError as exc:
        collect(state, translator(viewer.lang), viewer.lang, exc)
        return _chat_page(request, session, viewer, chat_id, state, status=422)
    try:
        service.agent_reply(session, actor=actor, chat_id=chat_id, data=data)
    except KizunaError as exc:
        return _refused(request, session, viewer, chat_id, exc, state)
    session.commit()
    return RedirectResponse(f"/chats/{chat_id}", status_code=303)


@router.post("/chats/{chat_id:int}/close")
def close(request: Request, session: DB, viewer: PostingViewer, chat_id: int) -> Response:
    actor = viewer.actor.via("ui")
    try:
        service.close_chat(session, actor=actor, chat_id=chat_id)
    except KizunaError as exc:
        return _refused(request, session, viewer, chat_id, exc, FormState(values={"text": ""}))
    session.commit()
    return with_notice(RedirectResponse("/inquiries/chats", status_code=303), "saved")


def _sites(request: Request, session: DB, viewer: Viewer, form: FormState, status: int = 200) -> Response:
    return render(request, "chats/sites.html", viewer, status=status, form=form, sites=service.list_origins(session))


@router.get("/chats/sites")
def sites(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    require(viewer.actor, "chats:manage")
    return _sites(request, session, viewer, FormState(values={"origin": ""}))


@router.post("/chats/sites")
def add_site(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    require(viewer.actor, "chats:manage")
    state = read_form(posted, ("origin",))
    actor = viewer.actor.via("ui")
    made = submit(
        state, translator(viewer.lang), viewer.lang,
        lambda: service.add_origin(session, actor=actor, origin=state.values["origin"]),
    )  # fmt: skip
    if made is None:
        session.rollback()
        return _sites(request, session, viewer, state, status=422)
    session.commit()
    cors.forget()
    return with_notice(RedirectResponse("/chats/sites", status_code=303), "created")


@router.post("/chats/sites/{site_id:int}/delete")
def delete_site(request: Request, session: DB, viewer: PostingViewer, site_id: int) -> Response:
    service.remove_origin(session, actor=viewer.actor.via("ui"), origin_id=site_id)
    session.commit()
    cors.forget()
    return with_notice(RedirectResponse("/chats/sites", status_code=303), "deleted")
