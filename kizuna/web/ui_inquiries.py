"""The inquiry desk's pages: the queues (mine, my team's, unclaimed, all), a ticket with its thread beside the
customer's 360 summary (claim, release, reply with a macro, note, status and priority), the set-up of categories
and macros, and the report. Each form calls the service the API calls (kizuna/inquiries)."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from kizuna.errors import KizunaError
from kizuna.inquiries import claims, pages, queues, service, setup
from kizuna.inquiries.pages import PRIORITIES, STATUSES
from kizuna.inquiries.schemas import CategoryIn, InquiryUpdate, MacroIn, ReplyCreate
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, collect, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


@router.get("/inquiries")
def queue_page(request: Request, session: DB, viewer: CurrentViewer, tab: str = "all") -> Response:
    tab = tab if tab in queues.TABS else "all"
    rows = pages.queue_rows(session, actor=viewer.actor, tab=tab, lang=viewer.lang)
    return render(request, "inquiries/queue.html", viewer, rows=rows, tab=tab, tabs=queues.TABS)


def _ticket(
    request: Request,
    session: Session,
    viewer: Viewer,
    inquiry_id: int,
    *,
    reply: FormState | None = None,
    problem: str = "",
    status: int = 200,
) -> Response:
    view = pages.ticket_page(session, actor=viewer.actor, inquiry_id=inquiry_id, lang=viewer.lang)
    if reply is None:
        macro_id = _int(request.query_params.get("macro"))
        body = next((m.body for m in view.macros if m.id == macro_id), "")
        reply = FormState(values={"body": body, "status": "pending"})
    i = view.inquiry
    t = translator(viewer.lang)
    change = FormState(
        values={
            "status": i.status,
            "priority": i.priority,
            "category": str(i.category_id or ""),
            "team_id": str(i.team_id or ""),
        }
    )
    return render(
        request,
        "inquiries/ticket.html",
        viewer,
        status=status,
        view=view,
        reply=reply,
        change=change,
        problem=problem,
        status_options=[(s, t(f"inquiries.status.{s}")) for s in STATUSES],
        priority_options=[(p, t(f"inquiries.priority.{p}")) for p in PRIORITIES],
    )


@router.get("/inquiries/{inquiry_id:int}")
def ticket_page(request: Request, session: DB, viewer: CurrentViewer, inquiry_id: int) -> Response:
    return _ticket(request, session, viewer, inquiry_id)


def _act(request: Request, session: Session, viewer: Viewer, inquiry_id: int, action: Any, done: str) -> Response:
    """Run a claim or release; a refusal (held by another agent, closed, another team) is shown on the ticket."""
    try:
        action()
    except KizunaError as exc:
        session.rollback()
        if exc.status_code == 404:
            raise
        message = translate_error(translator(viewer.lang), viewer.lang, exc)
        return _ticket(request, session, viewer, inquiry_id, problem=message, status=exc.status_code)
    session.commit()
    return RedirectResponse(f"/inquiries/{inquiry_id}?done={done}", status_code=303)


@router.post("/inquiries/{inquiry_id:int}/claim")
def claim(request: Request, session: DB, viewer: PostingViewer, inquiry_id: int) -> Response:
    return _act(
        request, session, viewer, inquiry_id,
        lambda: claims.claim(session, actor=viewer.actor, inquiry_id=inquiry_id), "claimed",
    )  # fmt: skip


@router.post("/inquiries/{inquiry_id:int}/release")
def release(request: Request, session: DB, viewer: PostingViewer, inquiry_id: int) -> Response:
    return _act(
        request, session, viewer, inquiry_id,
        lambda: claims.release(session, actor=viewer.actor, inquiry_id=inquiry_id), "released",
    )  # fmt: skip


def _refused(
    request: Request, session: Session, viewer: Viewer, inquiry_id: int, exc: Exception, reply: FormState | None = None
) -> Response:
    """The ticket again with why the change was refused: a field's error (422) or the desk's refusal (a ticket
    held by another agent or closed: 409; another team's: 403), in the viewer's language."""
    session.rollback()
    t = translator(viewer.lang)
    if isinstance(exc, KizunaError):
        if exc.status_code == 404:
            raise exc
        return _ticket(
            request, session, viewer, inquiry_id, reply=reply, problem=translate_error(t, viewer.lang, exc),
            status=exc.status_code,
        )  # fmt: skip
    state = reply or FormState(values={})
    collect(state, t, viewer.lang, exc)
    problem = " ".join([*state.general, *state.errors.values()])
    return _ticket(request, session, viewer, inquiry_id, reply=reply, problem=problem, status=422)


@router.post("/inquiries/{inquiry_id:int}/reply")
def reply(request: Request, session: DB, viewer: PostingViewer, posted: Posted, inquiry_id: int) -> Response:
    state = read_form(posted, ("body", "note", "status"))
    note = state.values["note"] == "1"
    try:
        data = ReplyCreate(
            body=state.values["body"], note=note, status=None if note else (state.values["status"] or None)
        )
        service.reply(session, actor=viewer.actor, inquiry_id=inquiry_id, data=data)
    except (KizunaError, pydantic.ValidationError) as exc:
        return _refused(request, session, viewer, inquiry_id, exc, reply=state)
    session.commit()
    return RedirectResponse(f"/inquiries/{inquiry_id}?done={'noted' if note else 'replied'}", status_code=303)


@router.post("/inquiries/{inquiry_id:int}/update")
def update(request: Request, session: DB, viewer: PostingViewer, posted: Posted, inquiry_id: int) -> Response:
    values = read_form(posted, ("status", "priority", "category", "team_id", "version")).values
    try:
        data = InquiryUpdate(
            status=values["status"] or None,
            priority=values["priority"] or None,
            category=values["category"] or None,
            team_id=_int(values["team_id"]),
            version=_int(values["version"]),
        )
        service.update_inquiry(session, actor=viewer.actor, inquiry_id=inquiry_id, data=data)
    except (KizunaError, pydantic.ValidationError) as exc:
        return _refused(request, session, viewer, inquiry_id, exc)
    session.commit()
    return RedirectResponse(f"/inquiries/{inquiry_id}?done=saved", status_code=303)


# --- set-up and report -----------------------------------------------------------------------------------------


def _setup(
    request: Request, session: Session, viewer: Viewer, *, category: FormState | None = None,
    macro: FormState | None = None, status: int = 200,
) -> Response:  # fmt: skip
    data = pages.setup_page(session, actor=viewer.actor)
    return render(
        request,
        "inquiries/setup.html",
        viewer,
        status=status,
        category_form=category or FormState(values={"name": "", "name_en": "", "team_id": ""}),
        macro_form=macro or FormState(values={"name": "", "body": "", "category_id": ""}),
        **data,
    )


@router.get("/inquiries/setup")
def setup_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _setup(request, session, viewer)


@router.post("/inquiries/setup/categories")
def add_category(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    state = read_form(posted, ("name", "name_en", "team_id"))
    t = translator(viewer.lang)

    def action() -> Any:
        data = CategoryIn(
            name=state.values["name"], name_en=state.values["name_en"] or None, team_id=_int(state.values["team_id"])
        )
        return setup.create_category(session, actor=viewer.actor, data=data)

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        return _setup(request, session, viewer, category=state, status=422)
    session.commit()
    return RedirectResponse("/inquiries/setup?saved=1", status_code=303)


@router.post("/inquiries/setup/categories/{category_id:int}")
def update_category(request: Request, session: DB, viewer: PostingViewer, posted: Posted, category_id: int) -> Response:
    """Rename a category, route it to a team, or retire it (inactive: no longer offered, kept on old tickets)."""
    state = read_form(posted, ("name", "name_en", "team_id", "active"))
    t = translator(viewer.lang)

    def action() -> Any:
        data = CategoryIn(
            name=state.values["name"],
            name_en=state.values["name_en"] or None,
            team_id=_int(state.values["team_id"]),
            active=state.values["active"] == "1",
        )
        return setup.update_category(session, actor=viewer.actor, category_id=category_id, data=data)

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        state.general += list(state.errors.values())
        return _setup(request, session, viewer, category=state, status=422)
    session.commit()
    return RedirectResponse("/inquiries/setup?saved=1", status_code=303)


@router.post("/inquiries/setup/macros")
def add_macro(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    state = read_form(posted, ("name", "body", "category_id"))
    t = translator(viewer.lang)

    def action() -> Any:
        data = MacroIn(
            name=state.values["name"], body=state.values["body"], category_id=_int(state.values["category_id"])
        )
        return setup.create_macro(session, actor=viewer.actor, data=data)

    if submit(state, t, viewer.lang, action) is None:
        session.rollback()
        return _setup(request, session, viewer, macro=state, status=422)
    session.commit()
    return RedirectResponse("/inquiries/setup?saved=1", status_code=303)


@router.post("/inquiries/setup/macros/{macro_id:int}/delete")
def delete_macro(session: DB, viewer: PostingViewer, macro_id: int) -> Response:
    setup.delete_macro(session, actor=viewer.actor, macro_id=macro_id)
    session.commit()
    return RedirectResponse("/inquiries/setup?saved=1", status_code=303)


@router.get("/inquiries/report")
def report_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    report = queues.report(session, actor=viewer.actor, lang=viewer.lang)
    return render(request, "inquiries/report.html", viewer, report=report)


NEW_FIELDS = ("subject", "body", "channel", "email", "phone", "name", "customer_id", "category", "priority")
# What an agent logs by hand: a call, a visit, or a mail or form entry typed in from elsewhere.
NEW_CHANNELS = ("phone", "visit", "email", "web_form")


def _new_page(request: Request, session: Session, viewer: Viewer, state: FormState, status: int = 200) -> Response:
    t = translator(viewer.lang)
    customer = None
    if customer_id := _int(state.values.get("customer_id")):
        from kizuna.customers.service import get_customer

        customer = get_customer(session, customer_id)  # an unknown id is a 404, a merged one its survivor
    categories = [
        (str(c.id), c.name_en if viewer.lang == "en" and c.name_en else c.name)
        for c in setup.list_categories(session, active_only=True)
    ]
    return render(
        request,
        "inquiries/new.html",
        viewer,
        status=status,
        form=state,
        customer=customer,
        channels=[(c, t(f"inquiries.channel.{c}")) for c in NEW_CHANNELS],
        categories=categories,
        priority_options=[(p, t(f"inquiries.priority.{p}")) for p in PRIORITIES],
    )


@router.get("/inquiries/new")
def new_inquiry_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    from kizuna.auth.permissions import require

    require(viewer.actor, "inquiries:create")
    values = {name: "" for name in NEW_FIELDS} | {"channel": "phone", "priority": "normal"}
    values["customer_id"] = str(_int(request.query_params.get("customer_id")) or "")
    return _new_page(request, session, viewer, FormState(values=values))


@router.post("/inquiries/new")
def create_inquiry(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    from kizuna.inquiries.schemas import InquiryCreate

    state = read_form(posted, NEW_FIELDS)

    def save() -> Any:
        values = {k: v.strip() for k, v in state.values.items()}
        data = InquiryCreate(
            subject=values["subject"],
            body=values["body"],
            channel=values["channel"] or "phone",
            customer_id=_int(values["customer_id"]),
            email=values["email"] or None,
            phone=values["phone"] or None,
            name=values["name"] or None,
            category=_int(values["category"]),
            priority=values["priority"] or "normal",
        )
        return service.open_inquiry(session, actor=viewer.actor.via("ui"), data=data)

    opened = submit(state, translator(viewer.lang), viewer.lang, save)
    if opened is None:
        session.rollback()
        return _new_page(request, session, viewer, state, status=422)
    session.commit()
    return RedirectResponse(f"/inquiries/{opened.inquiry.id}", status_code=303)
