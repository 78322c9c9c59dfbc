"""Browser sign-in for the UI: the session cookie, the signed-in viewer, CSRF checks and safe redirects."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Form, Request
from starlette.responses import Response

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.errors import NotAuthenticated, PermissionDenied
from kizuna.web.deps import DB, SESSION_COOKIE
from kizuna.web.i18n import LANG_COOKIE, choose_language

if TYPE_CHECKING:
    # Only named as the types auth hands back; the web layer never queries another domain's tables.
    from kizuna.auth.models import UiSession, User

LOGIN_CSRF_COOKIE = "kizuna_login_csrf"


class PasswordChangeRequired(Exception):  # noqa: N818 - a signal to the UI route, not an error shown
    """The viewer's password was reset by an admin: every page but the password form (and sign-out) waits."""


# The pages a user who must change their password can still open.
PASSWORD_CHANGE_PATHS = ("/settings/password", "/logout", "/lang/")


@dataclass(frozen=True)
class ShownUser:
    """What pages show of the signed-in user, read once: an error page rendered after the request's database
    session was rolled back or closed must not need the (then expired) ORM row."""

    id: int
    email: str
    name: str
    role: str
    must_change_password: bool


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a UI request, the actor their actions are recorded as, and the UI language."""

    user: User
    ui_session: UiSession
    actor: Actor
    lang: str
    shown: ShownUser
    csrf_token: str


def current_viewer(request: Request, session: DB) -> Viewer:
    """The signed-in viewer; raises NotAuthenticated (the UI turns it into a redirect to /login)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise NotAuthenticated("please sign in")
    user, ui_session = auth.resume_session(session, secret)
    lang = choose_language(request.cookies.get(LANG_COOKIE), user.locale)
    shown = ShownUser(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        must_change_password=bool(user.must_change_password),
    )
    viewer = Viewer(
        user=user,
        ui_session=ui_session,
        actor=auth.actor_for(user).via("ui"),
        lang=lang,
        shown=shown,
        csrf_token=ui_session.csrf_token,
    )
    request.state.viewer = viewer
    if user.must_change_password and not request.url.path.startswith(PASSWORD_CHANGE_PATHS):
        raise PasswordChangeRequired
    return viewer


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def posting_viewer(viewer: CurrentViewer, csrf_token: Annotated[str, Form()] = "") -> Viewer:
    """The viewer of a form POST, after checking the form's CSRF token against the session's."""
    if not tokens_match(viewer.csrf_token, csrf_token):
        raise PermissionDenied(
            "the form's security token is missing or out of date; reload the page and try again", key="error.csrf"
        )
    return viewer


PostingViewer = Annotated[Viewer, Depends(posting_viewer)]


def safe_next(raw: str | None, default: str = "/customers") -> str:
    """A relative path on this site to go to after sign-in; anything else (other hosts, schemes) is ignored."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return default
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        return default
    return raw


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def set_session_cookie(response: Response, secret: str) -> None:
    settings = get_settings()
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def set_login_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=get_settings().secure_cookies,
        path="/login",
    )


def set_lang_cookie(response: Response, lang: str) -> None:
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=get_settings().secure_cookies
    )
