"""Live chats in the UI: the queue (waiting first), a chat with its messages and the agent's reply box, and
the sites allowed to embed the widget."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kizuna.auth.permissions import require
from kizuna.chat import cors, service
from kizuna.chat.schemas import AgentReply
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, read_form, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router, with_notice

router = ui_router()


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


@router.get("/chats")
def chat_list(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return render(request, "chats/list.html", viewer, chats=service.open_chats(session, actor=viewer.actor))


def _chat_page(request: Request, session: DB, viewer: Viewer, chat_id: int, form: FormState, status: int = 200):  # noqa: ANN202
    require(viewer.actor, "chats:read")
    chat = service.get_chat(session, chat_id)
    return render(
        request, "chats/chat.html", viewer, status=status, chat=chat, form=form,
        messages=service.messages_after(session, chat),
    )  # fmt: skip


@router.get("/chats/{chat_id:int}")
def chat_page(request: Request, session: DB, viewer: CurrentViewer, chat_id: int) -> Response:
    return _chat_page(request, session, viewer, chat_id, FormState(values={"text": ""}))


@router.post("/chats/{chat_id:int}/reply")
def reply(request: Request, session: DB, viewer: PostingViewer, posted: Posted, chat_id: int) -> Response:
    state = read_form(posted, ("text",))
    actor = viewer.actor.via("ui")
    sent = submit(
        state, translator(viewer.lang), viewer.lang,
        lambda: service.agent_reply(session, actor=actor, chat_id=chat_id, data=AgentReply(text=state.values["text"])),
    )  # fmt: skip
    if sent is None:
        session.rollback()
        return _chat_page(request, session, viewer, chat_id, state, status=422)
    session.commit()
    return RedirectResponse(f"/chats/{chat_id}", status_code=303)


@router.post("/chats/{chat_id:int}/close")
def close(session: DB, viewer: PostingViewer, chat_id: int) -> Response:
    service.close_chat(session, actor=viewer.actor.via("ui"), chat_id=chat_id)
    session.commit()
    return with_notice(RedirectResponse("/chats", status_code=303), "saved")


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
