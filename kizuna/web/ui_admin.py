"""UI pages for administration: the audit log, users, and each user's own API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth import service as auth
from kizuna.auth import signin
from kizuna.auth.filters import AUDIT_FILTERS
from kizuna.auth.permissions import ROLES, require
from kizuna.auth.schemas import TokenCreate
from kizuna.errors import Conflict, TooManyAttempts, ValidationError
from kizuna.listing import list_page
from kizuna.web.deps import DB, client_address
from kizuna.web.forms import FormState, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import render, ui_router

router = ui_router()

AUDIT_PAGE = 100


@router.get("/admin/audit")
def audit_log(request: Request, session: DB, viewer: CurrentViewer, cursor: str | None = None) -> Response:
    """The audit log, newest first, paged like the API's ``/api/v1/audit`` (same filter set)."""
    require(viewer.actor, "audit:read")
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    entries, older = list_page(session, AUDIT_FILTERS, AUDIT_FILTERS.select(), params, cursor=cursor, limit=AUDIT_PAGE)
    return render(request, "admin/audit.html", viewer, entries=entries, older=older, before=cursor)


def _users_page(
    request: Request,
    session: DB,
    viewer: CurrentViewer,
    *,
    status: int = 200,
    error: str = "",
    form: dict | None = None,
) -> Response:
    users = auth.list_users(session, actor=viewer.actor)
    return render(
        request,
        "admin/users.html",
        viewer,
        status=status,
        users=users,
        locked=signin.locked_emails(session),
        roles=ROLES,
        error=error,
        form=form or {},
    )


@router.get("/admin/users")
def users(request: Request, session: DB, viewer: CurrentViewer) -> Response:
    return _users_page(request, session, viewer)


@router.post("/admin/users")
def create_user(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form()] = "viewer",
    password: Annotated[str, Form()] = "",
) -> Response:
    try:
        auth.create_user(session, actor=viewer.actor, email=email, password=password or None, role=role, name=name)
    except (ValidationError, Conflict) as exc:
        session.rollback()
        form = {"email": email, "name": name, "role": role}
        return _users_page(request, session, viewer, status=exc.status_code, error=exc.message, form=form)
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id:int}/unlock")
def unlock_user(session: DB, viewer: PostingViewer, user_id: int) -> Response:
    """Lift a sign-in lock left by too many wrong passwords."""
    require(viewer.actor, "users:manage")
    signin.unlock_user(session, actor=viewer.actor, email=auth.email_of(session, user_id))
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id:int}/password")
def reset_password(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    user_id: int,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Set a user's password (a reset); their lock is lifted and their browser sessions end."""
    require(viewer.actor, "users:manage")
    email = auth.email_of(session, user_id)
    try:
        signin.set_password(session, actor=viewer.actor, email=email, password=password)
    except ValidationError as exc:
        session.rollback()
        return _users_page(request, session, viewer, status=422, error=f"{email}: {exc.message}")
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)


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
        return _password_page(request, viewer, status=exc.status_code, error=exc.message)
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
