"""UI pages for managing users (admins): the list, one user's page, role, deactivation, password reset, unlock."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from kizuna.auth import accounts, signin
from kizuna.auth import service as auth
from kizuna.auth.permissions import ROLES, require
from kizuna.errors import Conflict, ValidationError
from kizuna.web.deps import DB
from kizuna.web.forms import FormState, submit
from kizuna.web.i18n import translator
from kizuna.web.session import CurrentViewer, PostingViewer, Viewer
from kizuna.web.ui_base import error_text, render, ui_router, with_notice

router = ui_router()

# The flash kind under which a temporary password waits for the next page of the admin who set it.
TEMP_PASSWORD = "temp_password"  # noqa: S105 - a name, not a password


def _users_page(
    request: Request,
    session: DB,
    viewer: Viewer,
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
        message = error_text(viewer.lang, exc.status_code, exc)
        return _users_page(request, session, viewer, status=exc.status_code, error=message, form=form)
    session.commit()
    return with_notice(RedirectResponse("/admin/users", status_code=303), "created")


def _user_page(
    request: Request,
    session: DB,
    viewer: Viewer,
    user_id: int,
    *,
    status: int = 200,
    role_form: FormState | None = None,
    password_form: FormState | None = None,
    active_form: FormState | None = None,
    temporary_password: str | None = None,
) -> Response:
    user = accounts.get_user(session, actor=viewer.actor, user_id=user_id)
    return render(
        request,
        "admin/user.html",
        viewer,
        status=status,
        member=user,
        is_self=user.id == viewer.user.id,
        locked=user.email in signin.locked_emails(session),
        roles=ROLES,
        role_form=role_form or FormState(values={"role": user.role}),
        password_form=password_form or FormState(values={"password": ""}),
        active_form=active_form or FormState(),
        temporary_password=temporary_password,
    )


@router.get("/admin/users/{user_id:int}")
def user_detail(request: Request, session: DB, viewer: CurrentViewer, user_id: int) -> Response:
    """One user: role, active or not, sign-in lock, password reset; a temporary password just set is shown once."""
    require(viewer.actor, "users:manage")
    temporary = auth.take_flash(viewer.ui_session, kind=f"{TEMP_PASSWORD}:{user_id}")
    if temporary is not None:
        session.commit()
    return _user_page(request, session, viewer, user_id, temporary_password=temporary)


@router.post("/admin/users/{user_id:int}/role")
def change_role(
    request: Request, session: DB, viewer: PostingViewer, user_id: int, role: Annotated[str, Form()] = ""
) -> Response:
    state = FormState(values={"role": role})
    done = submit(
        state,
        translator(viewer.lang),
        viewer.lang,
        lambda: accounts.change_role(session, actor=viewer.actor, user_id=user_id, role=role),
    )
    if done is None:
        session.rollback()
        return _user_page(request, session, viewer, user_id, status=422, role_form=state)
    session.commit()
    return with_notice(RedirectResponse(f"/admin/users/{user_id}", status_code=303), "saved")


def _set_active(request: Request, session: DB, viewer: Viewer, user_id: int, *, active: bool) -> Response:
    state = FormState()  # no field: a refusal (the last admin) is shown beside the button
    done = submit(
        state,
        translator(viewer.lang),
        viewer.lang,
        lambda: accounts.set_active(session, actor=viewer.actor, user_id=user_id, active=active),
    )
    if done is None:
        session.rollback()
        return _user_page(request, session, viewer, user_id, status=422, active_form=state)
    session.commit()
    return with_notice(RedirectResponse(f"/admin/users/{user_id}", status_code=303), "saved")


@router.post("/admin/users/{user_id:int}/deactivate")
def deactivate_user(request: Request, session: DB, viewer: PostingViewer, user_id: int) -> Response:
    """Refuse the user's sign-in; their browser sessions end and their API tokens stop working."""
    return _set_active(request, session, viewer, user_id, active=False)


@router.post("/admin/users/{user_id:int}/reactivate")
def reactivate_user(request: Request, session: DB, viewer: PostingViewer, user_id: int) -> Response:
    return _set_active(request, session, viewer, user_id, active=True)


@router.post("/admin/users/{user_id:int}/unlock")
def unlock_user(session: DB, viewer: PostingViewer, user_id: int) -> Response:
    """Lift a sign-in lock left by too many wrong passwords."""
    require(viewer.actor, "users:manage")
    signin.unlock_user(session, actor=viewer.actor, email=auth.email_of(session, user_id))
    session.commit()
    return with_notice(RedirectResponse(f"/admin/users/{user_id}", status_code=303), "saved")


@router.post("/admin/users/{user_id:int}/password")
def reset_password(
    request: Request,
    session: DB,
    viewer: PostingViewer,
    user_id: int,
    password: Annotated[str, Form()] = "",
) -> Response:
    """Set a temporary password (the one typed, or a generated one when left empty), shown once on the user's
    page after the redirect; the user chooses their own at the next sign-in. Their lock is lifted and their
    browser sessions end."""
    state = FormState(values={"password": password})
    temporary = submit(
        state,
        translator(viewer.lang),
        viewer.lang,
        lambda: accounts.reset_password(session, actor=viewer.actor, user_id=user_id, password=password or None),
    )
    if temporary is None:
        session.rollback()
        return _user_page(request, session, viewer, user_id, status=422, password_form=state)
    auth.set_flash(viewer.ui_session, kind=f"{TEMP_PASSWORD}:{user_id}", value=temporary)
    session.commit()
    return RedirectResponse(f"/admin/users/{user_id}", status_code=303)
