"""UI pages of sales: the home page (my tasks, my deals), the kanban board, the deal list, a deal's page, and
the forms that log an activity or add a task from a customer, company or deal page.

Handlers parse the form, call one service and render; the rules (stages, lost reasons, who may edit) live in
kizuna/sales. The board's drag and drop posts the same form as its keyboard menu (static/sales.js).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import JSONResponse, RedirectResponse, Response

from kizuna.config import get_settings
from kizuna.customers import edits
from kizuna.errors import KizunaError
from kizuna.sales import activities, board, deals, pipelines, summary
from kizuna.sales.filters import DEAL_FORM_FIELDS
from kizuna.sales.schemas import ActivityCreate, DealCreate, DealUpdate, TaskCreate, TaskUpdate
from kizuna.web import custom_fields
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, blank_to_none, read_form, submit, translate_error
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import env, money, render, ui_router

router = ui_router()

DEAL_FIELDS = (
    "name",
    "customer_id",
    "company_id",
    "amount",
    "currency",
    "probability",
    "expected_close_date",
    "owner_id",
)
ACTIVITY_FIELDS = (
    "kind",
    "subject",
    "notes",
    "occurred_at",
    "duration_minutes",
    "customer_id",
    "company_id",
    "deal_id",
)
TASK_FIELDS = ("title", "notes", "due_at", "remind_at", "owner_id", "customer_id", "company_id", "deal_id")
LIST_FIELDS = DEAL_FORM_FIELDS
MORE = 200  # cards a column shows after "load more"


async def _posted(request: Request) -> FormData:
    return await request.form()


Posted = Annotated[FormData, Depends(_posted)]


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _zone() -> str:
    return get_settings().default_timezone


def stage_label(stage: Any, lang: str) -> str:
    """A stage's (or pipeline's) name in the UI language: the English name on the English UI when there is one."""
    if isinstance(stage, summary.DealLine):
        name, english = stage.stage_name, stage.stage_name_en
    else:
        name, english = stage.name, stage.name_en
    return english if lang == "en" and english else name


env.globals["stage_label"] = stage_label


def _totals_text(totals: dict) -> str:
    return " · ".join(money(amount, currency) for currency, amount in sorted(totals.items())) or money(0)


env.globals["totals_text"] = _totals_text


@router.get("/home")
def home_page(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    view = summary.home(session, actor=viewer.actor, zone=_zone())
    return render(request, "sales/home.html", viewer, view=view, tz=_zone())


@router.get("/deals/board")
def board_page(
    request: Request, session: DB, viewer: CurrentViewer, pipeline: int | None = None, more: int | None = None
) -> Response:
    view = board.board(session, actor=viewer.actor, pipeline_id=pipeline)
    if more is not None:
        for column in view.columns:
            if column.stage.id == more:
                _, cards, _ = board.column_cards(session, actor=viewer.actor, stage_id=more, offset=0, limit=MORE)
                column.cards = cards
    session.commit()  # the default pipeline, made on first use
    return render(
        request,
        "sales/board.html",
        viewer,
        board=view,
        pipelines=pipelines.list_pipelines(session),
        more=more,
    )


@router.post("/deals/{deal_id:int}/move")
def move_deal(request: Request, session: DB, viewer: PostingViewer, posted: Posted, deal_id: int) -> Response:
    """The board's move: the card's menu (a form) or a drop (the same form, sent by sales.js, answered in JSON)."""
    wants_json = "application/json" in request.headers.get("accept", "")
    t = translator(viewer.lang)
    try:
        deal = deals.move_deal(
            session,
            actor=viewer.actor,
            deal_id=deal_id,
            stage_id=_int(posted.get("stage_id")) or 0,
            lost_reason=str(posted.get("lost_reason") or "") or None,
            body_version=_int(posted.get("version")),
        )
        session.commit()
    except KizunaError as exc:
        session.rollback()
        if not wants_json:
            raise
        card = board.card_of(session, actor=viewer.actor, deal_id=deal_id)
        message = translate_error(t, viewer.lang, exc)
        if exc.status_code == 409:
            message = t("sales.moved_meanwhile")
        return JSONResponse(
            {
                "ok": False,
                "status": exc.status_code,
                "message": message,
                "stage_id": card.stage_id if card else None,
                "card": _card_html(session, viewer, card) if card else "",
            },
            status_code=exc.status_code,
        )
    if not wants_json:
        return RedirectResponse(request.headers.get("referer") or f"/deals/{deal_id}", status_code=303)
    card = board.card_of(session, actor=viewer.actor, deal_id=deal.id)
    view = board.board(session, actor=viewer.actor, pipeline_id=deal.pipeline_id, per_column=0)
    columns = {str(c.stage.id): {"count": c.count, "total": _totals_text(c.totals)} for c in view.columns}
    return JSONResponse(
        {"ok": True, "stage_id": deal.stage_id, "card": _card_html(session, viewer, card), "columns": columns}
    )


def _card_html(session: Session, viewer: Viewer, card: board.Card | None) -> str:
    """One card as the board renders it, for sales.js to put in place of the dragged one."""
    if card is None:
        return ""
    return env.get_template("sales/_card.html").render(
        card=card,
        stages=pipelines.stages_of(session, card.pipeline_id),
        t=translator(viewer.lang),
        lang=viewer.lang,
        csrf_token=viewer.csrf_token,
    )


@router.get("/deals/new")
def new_deal_form(
    request: Request, session: DB, viewer: CurrentViewer, customer_id: int | None = None, company_id: int | None = None
) -> Response:
    values = dict.fromkeys((*DEAL_FIELDS, *custom_fields.names(custom_fields.definitions(session, "deal"))), "")
    values.update(customer_id=str(customer_id or ""), company_id=str(company_id or ""), currency="JPY")
    values["owner_id"] = str(viewer.actor.user_id or "")
    return _deal_form(request, session, viewer, FormState(values=values))


def _deal_form(request: Request, session: Session, viewer: Viewer, state: FormState, status: int = 200) -> Response:
    all_pipelines = pipelines.list_pipelines(session)
    session.commit()
    stages = [(s, p) for p in all_pipelines for s in pipelines.stages_of(session, p.id)]
    return render(
        request,
        "sales/deal_form.html",
        viewer,
        status=status,
        form=state,
        stages=stages,
        owners=edits.assignable_users(session),
        companies=edits.company_choices(session),
        **custom_fields.context(session, custom_fields.definitions(session, "deal")),
    )


@router.post("/deals/new")
def create_deal(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    defs = custom_fields.definitions(session, "deal")
    state = read_form(posted, (*DEAL_FIELDS, "stage_id", *custom_fields.names(defs)))
    t = translator(viewer.lang)

    def action() -> Any:
        typed = {k: v for k, v in blank_to_none(state.values, (*DEAL_FIELDS, "stage_id")).items() if v is not None}
        attributes = custom_fields.attributes_from(state.values, set(posted), defs, None)
        if attributes is not None:
            typed["attributes"] = attributes
        return deals.create_deal(session, actor=viewer.actor, data=DealCreate(**typed))

    deal = submit(state, t, viewer.lang, action)
    if deal is None:
        session.rollback()
        return _deal_form(request, session, viewer, state, status=422)
    session.commit()
    return RedirectResponse(f"/deals/{deal.id}?saved=1", status_code=303)


@router.get("/deals/{deal_id:int}")
def deal_page(request: Request, session: DB, viewer: CurrentViewer, deal_id: int) -> Response:
    return _deal_page(request, session, viewer, deal_id)


def _deal_page(
    request: Request,
    session: Session,
    viewer: Viewer,
    deal_id: int,
    *,
    edit_form: FormState | None = None,
    version: int | None = None,
    status: int = 200,
) -> Response:
    view = summary.deal_page(session, actor=viewer.actor, deal_id=deal_id)
    d = view.deal
    shown = custom_fields.page_context(session, "deal")
    if edit_form is None:
        edit_form = FormState(values={n: "" if getattr(d, n) is None else str(getattr(d, n)) for n in DEAL_FIELDS})
        edit_form.values.update(custom_fields.form_values(d.attributes, shown["custom_fields"]))
    return render(
        request,
        "sales/deal.html",
        viewer,
        status=status,
        view=view,
        form=edit_form,
        version=version if version is not None else d.version,
        owners=edits.assignable_users(session),
        companies=edits.company_choices(session),
        activity_form=FormState(values={"kind": "call"}),
        task_form=FormState(values={}),
        tz=_zone(),
        custom_users=edits.assignable_users(session),
        **shown,
    )


@router.post("/deals/{deal_id:int}/edit")
def update_deal(request: Request, session: DB, viewer: PostingViewer, posted: Posted, deal_id: int) -> Response:
    defs = custom_fields.definitions(session, "deal")
    state = read_form(posted, (*DEAL_FIELDS, *custom_fields.names(defs)))
    version = _int(posted.get("version"))
    t = translator(viewer.lang)

    def action() -> Any:
        values: dict[str, Any] = blank_to_none(state.values, DEAL_FIELDS)
        for name in ("amount", "currency", "probability"):
            if values[name] is None:
                values.pop(name)  # an emptied number keeps the stored one rather than failing
        current = deals.get_deal(session, deal_id).attributes
        attributes = custom_fields.attributes_from(state.values, set(posted), defs, current)
        if attributes is not None:
            values["attributes"] = attributes
        return deals.update_deal(
            session,
            actor=viewer.actor,
            deal_id=deal_id,
            data=DealUpdate(**values, version=version),
            expected_version=None,
        )

    updated = submit(state, t, viewer.lang, action)
    if updated is None:
        session.rollback()
        current = deals.get_deal(session, deal_id)
        stale = version is not None and version != current.version
        return _deal_page(
            request, session, viewer, deal_id, edit_form=state, version=current.version if stale else version,
            status=409 if stale else 422,
        )  # fmt: skip
    session.commit()
    return RedirectResponse(f"/deals/{deal_id}?saved=1", status_code=303)


def _back(posted: FormData, fallback: str) -> str:
    back = str(posted.get("back") or "")
    # Only a path of this site: never an address elsewhere.
    return back if back.startswith("/") and not back.startswith("//") else fallback


@router.post("/activities/new")
def log_activity(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    state = read_form(posted, ACTIVITY_FIELDS)
    t = translator(viewer.lang)

    def action() -> Any:
        typed = {k: v for k, v in blank_to_none(state.values, ACTIVITY_FIELDS).items() if v is not None}
        return activities.log_activity(session, actor=viewer.actor, data=ActivityCreate(**typed))

    activity = submit(state, t, viewer.lang, action)
    if activity is None:
        session.rollback()
        return render(
            request,
            "sales/entry_form.html",
            viewer,
            status=422,
            what="activity",
            form=state,
            back=_back(posted, "/home"),
        )
    session.commit()
    return RedirectResponse(_back(posted, f"/customers/{activity.customer_id}"), status_code=303)


@router.post("/tasks/new")
def create_task(request: Request, session: DB, viewer: PostingViewer, posted: Posted) -> Response:
    state = read_form(posted, TASK_FIELDS)
    t = translator(viewer.lang)

    def action() -> Any:
        typed = {k: v for k, v in blank_to_none(state.values, TASK_FIELDS).items() if v is not None}
        return activities.create_task(session, actor=viewer.actor, data=TaskCreate(**typed))

    task = submit(state, t, viewer.lang, action)
    if task is None:
        session.rollback()
        return render(
            request, "sales/entry_form.html", viewer, status=422, what="task", form=state, back=_back(posted, "/home")
        )
    session.commit()
    return RedirectResponse(_back(posted, "/home"), status_code=303)


@router.post("/tasks/{task_id:int}/status")
def task_status(request: Request, session: DB, viewer: PostingViewer, posted: Posted, task_id: int) -> Response:
    status = str(posted.get("status") or "")
    activities.update_task(
        session,
        actor=viewer.actor,
        task_id=task_id,
        data=TaskUpdate(status=status, version=_int(posted.get("version"))),  # type: ignore[arg-type]
        expected_version=None,
    )
    session.commit()
    return RedirectResponse(_back(posted, "/home"), status_code=303)


def sales_panel(session: Session, *, customer_id: int | None = None, company_id: int | None = None) -> summary.Related:
    """The sales panel of the 360 and company pages (their handlers call this)."""
    return summary.related(session, customer_id=customer_id, company_id=company_id)
