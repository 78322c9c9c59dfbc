"""Server-rendered UI: sign-in, sign-out, language switch; domain pages live in ``ui_customers`` and ``ui_admin``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth import service as auth
from kizuna.auth import signin
from kizuna.db import take_write_lock
from kizuna.errors import NotAuthenticated, TooManyAttempts
from kizuna.web import (
    ui_admin,
    ui_analytics,
    ui_campaigns,
    ui_cards,
    ui_chats,
    ui_companies,
    ui_customer_forms,
    ui_customers,
    ui_deal_list,
    ui_duplicates,
    ui_fields,
    ui_forecast,
    ui_imports,
    ui_inquiries,
    ui_inquiry_form,
    ui_journeys,
    ui_knowledge,
    ui_line,
    ui_lists,
    ui_messaging,
    ui_outbox,
    ui_privacy,
    ui_recipient,
    ui_sales,
    ui_sales_admin,
    ui_scoring,
    ui_segments,
    ui_sources,
    ui_surveys,
    ui_users,
    ui_webhooks,
)
from kizuna.web.deps import DB, SESSION_COOKIE, client_address
from kizuna.web.i18n import LANG_COOKIE, LANGUAGES, choose_language, translator
from kizuna.web.session import (
    LOGIN_CSRF_COOKIE,
    PostingViewer,
    clear_session_cookie,
    current_viewer,
    new_login_token,
    safe_next,
    set_lang_cookie,
    set_login_cookie,
    set_session_cookie,
    tokens_match,
)
from kizuna.web.ui_base import render, ui_router

router = ui_router()


@router.get("/")
def home() -> Response:
    return RedirectResponse("/home", status_code=303)


def _login_page(request: Request, *, next_path: str, email: str = "", error: str = "", status: int = 200) -> Response:
    token = new_login_token()
    response = render(request, "login.html", status=status, next=next_path, email=email, error=error, login_token=token)
    set_login_cookie(response, token)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:  # noqa: A002 - the query parameter's name
    return _login_page(request, next_path=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    session: DB,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
) -> Response:
    next_path = safe_next(next)
    t = translator(_lang(request))
    # Double-submit: the token in the form must equal the one this server set in a cookie on the login page.
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(request, next_path=next_path, email=email, error=t("auth.expired_form"), status=403)
    try:
        user = signin.sign_in(session, email=email, password=password, address=client_address(request))
    except NotAuthenticated:
        # The audit entry of the failed attempt; many wrong tries at once must not starve it on SQLite.
        take_write_lock(session.connection())
        session.commit()
        return _login_page(request, next_path=next_path, email=email, error=t("auth.wrong_password"), status=401)
    except TooManyAttempts:
        take_write_lock(session.connection())
        session.commit()
        return _login_page(request, next_path=next_path, email=email, error=t("auth.locked"), status=429)
    secret, _ = auth.start_session(session, user=user)
    session.commit()
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, secret)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get("/logout")
def logout_page(request: Request, session: DB) -> Response:
    """A link or a typed address lands here: ask to confirm with the sign-out button (a POST with the CSRF token)."""
    try:
        viewer = current_viewer(request, session)
    except NotAuthenticated:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", viewer)


@router.post("/logout")
def logout(request: Request, session: DB, viewer: PostingViewer) -> Response:
    auth.end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    session.commit()
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("/lang/{lang}")
def switch_language(lang: str, next: str | None = None) -> Response:  # noqa: A002 - the query parameter's name
    """Remember the chosen UI language in a cookie and go back to the page the switch was clicked on."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        set_lang_cookie(response, lang)
    return response


def _lang(request: Request) -> str:
    return choose_language(request.cookies.get(LANG_COOKIE))


router.include_router(ui_duplicates.router)
router.include_router(ui_scoring.router)
router.include_router(ui_lists.router)
router.include_router(ui_customers.router)
router.include_router(ui_companies.router)
router.include_router(ui_customer_forms.router)
router.include_router(ui_admin.router)
router.include_router(ui_users.router)
router.include_router(ui_analytics.router)
router.include_router(ui_outbox.router)
router.include_router(ui_sources.router)
router.include_router(ui_fields.router)
router.include_router(ui_imports.router)
router.include_router(ui_segments.router)
router.include_router(ui_campaigns.router)
router.include_router(ui_line.router)
router.include_router(ui_webhooks.router)
router.include_router(ui_journeys.router)
router.include_router(ui_messaging.router)
router.include_router(ui_recipient.router)
router.include_router(ui_privacy.router)
router.include_router(ui_sales.router)
router.include_router(ui_cards.router)
router.include_router(ui_deal_list.router)
router.include_router(ui_forecast.router)
router.include_router(ui_sales_admin.router)
router.include_router(ui_inquiries.router)
router.include_router(ui_inquiry_form.router)
router.include_router(ui_surveys.router)
router.include_router(ui_knowledge.router)
router.include_router(ui_chats.router)
