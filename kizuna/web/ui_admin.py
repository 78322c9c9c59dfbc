"""UI pages for administration: the audit log, and each user's own password and API tokens (users: ``ui_users``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth import service as auth
from kizuna.auth import signin
from kizuna.auth.filters import AUDIT_FILTERS
from kizuna.auth.permissions import require
from kizuna.auth.schemas import TokenCreate
from kizuna.config import get_settings
from kizuna.errors import TooManyAttempts, ValidationError
from kizuna.listing import list_page
from kizuna.sales import calendar
from kizuna.sales.calendar_api import feed_url as calendar_feed_url
from kizuna.web.deps import DB, client_address
from kizuna.web.forms import FormState, read_form, submit
from kizuna.web.i18n import catalog, translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import error_text, render, ui_router

router = ui_router()

AUDIT_PAGE = 100


# The audit page's filter form: field -> the AUDIT_FILTERS parameter it sets (dates are handled apart).
AUDIT_FIELDS = {
    "actor": "actor__contains",
    "action": "action",
    "entity_type": "entity_type",
    "entity_id": "entity_id",
}


def _day_start(raw: str, *, zone: ZoneInfo, next_day: bool = False) -> str:
    """Midnight of the day ``raw`` (YYYY-MM-DD) in ``zone`` as an ISO time (the next day's for an inclusive end)."""
    day = dt.date.fromisoformat(raw)
    if next_day:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).isoformat()


def audit_params(state: FormState, t: Callable[..., str]) -> dict[str, str]:
    """The AUDIT_FILTERS parameters for the filter form; a date that is not one is marked next to its field."""
    params = {AUDIT_FIELDS[k]: v for k, v in state.values.items() if k in AUDIT_FIELDS and v}
    zone = ZoneInfo(get_settings().default_timezone)
    for name, param, next_day in (("date_from", "at__gte", False), ("date_to", "at__lt", True)):
        raw = state.value(name)
        if not raw:
            continue
        try:
            params[param] = _day_start(raw, zone=zone, next_day=next_day)
        except (ValueError, OverflowError):
            state.add(name, t("error.date_parsing"))
    return params


@router.get("/admin/audit")
def audit_log(request: Request, session: DB, viewer: CurrentViewer, cursor: str | None = None) -> Response:
    """The audit log, newest first, filtered by actor, action, record and date (in the configured time zone),
    paged like the API's ``/api/v1/audit`` (same filter set)."""
    require(viewer.actor, "audit:read")
    state = read_form(request.query_params, (*AUDIT_FIELDS, "date_from", "date_to"))
    state.values = {k: v.strip() for k, v in state.values.items()}
    params = audit_params(state, translator(viewer.lang))
    entries: list = []
    older = None
    if state.ok:
        entries, older = list_page(
            session, AUDIT_FILTERS, AUDIT_FILTERS.select(), params, cursor=cursor, limit=AUDIT_PAGE
        )
    form = {k: v for k, v in state.values.items() if v}
    return render(
        request,
        "admin/audit.html",
        viewer,
        status=200 if state.ok else 422,
        entries=entries,
        older=older,
        before=cursor,
        filters=state,
        form=form,
        zone=get_settings().default_timezone,
        action_options=_labelled(viewer.lang, "audit_action.", state.value("action")),
        entity_options=_labelled(viewer.lang, "audit_entity.", state.value("entity_type")),
    )


def _labelled(lang: str, prefix: str, current: str) -> list[tuple[str, str]]:
    """(code, label) for every code with a label under ``prefix`` in the catalog, by label; a code asked for in
    the address that has no label is kept as its own option, so the form shows what is filtered."""
    texts = catalog(lang)
    options = sorted(
        ((key.removeprefix(prefix), text) for key, text in texts.items() if key.startswith(prefix)),
        key=lambda pair: pair[1],
    )
    if current and current not in {code for code, _ in options}:
        options.append((current, current))
    return options


def _password_page(
    request: Request, viewer: CurrentViewer, *, status: int = 200, error: str = "", done: bool = False
) -> Response:
    return render(request, "settings/password.html", viewer, status=status, error=error, done=done)


@router.get("/settings/password")
def password_form(request: Request, viewer: CurrentViewer) -> Response:
    return _password_page(request, viewer)


@router.post("/settings/password")
def change_password(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    current_password: Annotated[str, Form()] = "",
    new_password: Annotated[str, Form()] = "",
) -> Response:
    """Change your own password; your other browser sessions end, this one stays signed in."""
    try:
        signin.change_password(
            session,
            user=viewer.user,
            current=current_password,
            new=new_password,
            address=client_address(request),
            keep_session=viewer.ui_session,
        )
    except (ValidationError, TooManyAttempts) as exc:
        session.commit()  # a wrong current password is audited and counted
        message = error_text(viewer.lang, exc.status_code, exc)
        return _password_page(request, viewer, status=exc.status_code, error=message)
    session.commit()
    return _password_page(request, viewer, done=True)


def _tokens_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    *,
    new_token: str | None = None,
    status: int = 200,
    form: FormState | None = None,
) -> Response:
    tokens = auth.list_tokens(session, actor=viewer.actor)
    owners = auth.user_emails(session, {t.user_id for t in tokens})
    return render(
        request,
        "settings/tokens.html",
        viewer,
        status=status,
        tokens=tokens,
        owners=owners,
        new_token=new_token,
        form=form or FormState(values={"name": ""}),
    )


@router.get("/settings/tokens")
def tokens(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    # A token just created is shown on this one page load (then forgotten): reloading does not show it again.
    new_token = auth.take_flash(viewer.ui_session, kind="new_token")
    if new_token is not None:
        session.commit()
    return _tokens_page(request, session, viewer, new_token=new_token)


@router.post("/settings/tokens")
def create_token(
    request: Request, session: DB, viewer: PostingViewer, name: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """Create a token for the signed-in user and redirect: the next page shows it once (only its hash is kept).

    The redirect keeps a reload from creating a second token; the token waits in the browser session's flash,
    never in the URL.
    """
    state = FormState(values={"name": name})
    t = translator(viewer.lang)
    created = submit(
        state,
        t,
        viewer.lang,
        lambda: auth.create_token(
            session, actor=viewer.actor, email=viewer.user.email, name=TokenCreate(name=name).name
        ),
    )
    if created is None:
        session.rollback()
        return _tokens_page(request, session, viewer, status=422, form=state)
    auth.set_flash(viewer.ui_session, kind="new_token", value=created[1])
    session.commit()
    return RedirectResponse("/settings/tokens", status_code=303)


@router.post("/settings/tokens/{token_id:int}/revoke")
def revoke_token(session: DB, viewer: PostingViewer, token_id: int) -> Response:
    auth.revoke_token(session, actor=viewer.actor, token_id=token_id)
    session.commit()
    return RedirectResponse("/settings/tokens", status_code=303)


@router.get("/settings/calendar")
def calendar_settings(request: Request, session: DB, viewer: CurrentViewer, revoked: bool = False) -> Response:
    """The user's secret calendar feed URL: created or made anew here, shown once (as a new API token is)."""
    secret = auth.take_flash(viewer.ui_session, kind="calendar_url")
    if secret is not None:
        session.commit()
    feed = calendar.active_feed(session, actor=viewer.actor)
    new_url = calendar_feed_url(request, secret) if secret else None
    return render(request, "settings/calendar.html", viewer, feed=feed, new_url=new_url, revoked=revoked)


@router.post("/settings/calendar")
def create_calendar_feed(session: DB, viewer: PostingViewer) -> Response:
    _, secret = calendar.create_feed(session, actor=viewer.actor)
    auth.set_flash(viewer.ui_session, kind="calendar_url", value=secret)
    session.commit()
    return RedirectResponse("/settings/calendar", status_code=303)


@router.post("/settings/calendar/revoke")
def revoke_calendar_feed(session: DB, viewer: PostingViewer) -> Response:
    calendar.revoke_feed(session, actor=viewer.actor)
    session.commit()
    return RedirectResponse("/settings/calendar?revoked=1", status_code=303)
