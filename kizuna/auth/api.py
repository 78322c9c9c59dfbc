from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from kizuna.auth import accounts, service, signin
from kizuna.auth.filters import AUDIT_FILTERS
from kizuna.auth.models import AuditEntry, User
from kizuna.auth.permissions import require
from kizuna.auth.schemas import (
    AuditRead,
    PasswordChange,
    PasswordReset,
    PasswordSet,
    TemporaryPassword,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from kizuna.errors import NotFound, TooManyAttempts, ValidationError
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, page_of
from kizuna.web.deps import DB, APIActor, client_address

router = APIRouter(tags=["access"])


@router.get("/me", response_model=UserRead)
def me(session: DB, actor: APIActor) -> User:
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("user not found")
    return user


@router.post(
    "/me/password",
    status_code=204,
    responses={429: {"description": "Too many wrong passwords: the account or the address is locked for now"}},
)
def change_my_password(data: PasswordChange, request: Request, session: DB, actor: APIActor) -> Response:
    """Change your own password; the current one is checked (and throttled) like a sign-in. Other UI sessions end."""
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("user not found")
    try:
        signin.change_password(
            session, user=user, current=data.current_password, new=data.new_password, address=client_address(request)
        )
    except (ValidationError, TooManyAttempts):
        session.commit()  # a wrong current password is audited and counted even though the change is refused
        raise
    session.commit()
    return Response(status_code=204)


@router.get("/users", response_model=list[UserRead])
def list_users(session: DB, actor: APIActor) -> list:
    users = service.list_users(session, actor=actor)
    locked = signin.locked_emails(session)
    return [{**UserRead.model_validate(u).model_dump(), "locked": u.email in locked} for u in users]


@router.put("/users/{user_id}/password", status_code=204)
def set_password(user_id: int, data: PasswordSet, session: DB, actor: APIActor) -> Response:
    """Set (reset) a user's password (admins); lifts their sign-in lock and ends their UI sessions."""
    signin.set_password(session, actor=actor, email=_email_of(session, actor, user_id), password=data.password)
    session.commit()
    return Response(status_code=204)


@router.post("/users/{user_id}/unlock", status_code=204)
def unlock_user(user_id: int, session: DB, actor: APIActor) -> Response:
    """Lift a sign-in lock left by too many wrong passwords (admins)."""
    signin.unlock_user(session, actor=actor, email=_email_of(session, actor, user_id))
    session.commit()
    return Response(status_code=204)


def _email_of(session: DB, actor: APIActor, user_id: int) -> str:
    require(actor, "users:manage")  # before the lookup, so that others cannot probe which ids exist
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user.email


@router.post("/users/{user_id}/deactivate", response_model=UserRead)
def deactivate_user(user_id: int, session: DB, actor: APIActor) -> User:
    """Refuse the user's sign-in; their UI sessions end and their API tokens stop working (admins). The last
    active admin cannot be deactivated."""
    user = accounts.set_active(session, actor=actor, user_id=user_id, active=False)
    session.commit()
    return user


@router.post("/users/{user_id}/reactivate", response_model=UserRead)
def reactivate_user(user_id: int, session: DB, actor: APIActor) -> User:
    user = accounts.set_active(session, actor=actor, user_id=user_id, active=True)
    session.commit()
    return user


@router.post("/users/{user_id}/password-reset", response_model=TemporaryPassword)
def reset_password(user_id: int, session: DB, actor: APIActor, data: PasswordReset | None = None) -> dict:
    """Set a temporary password (generated unless given), returned this once; the user must choose their own at
    the next sign-in in the UI. Their sign-in lock is lifted and their UI sessions end (admins)."""
    password = data.password if data else None
    temporary = accounts.reset_password(session, actor=actor, user_id=user_id, password=password)
    session.commit()
    return {"temporary_password": temporary}


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(data: UserCreate, session: DB, actor: APIActor) -> User:
    user = service.create_user(
        session, actor=actor, email=data.email, password=data.password, role=data.role, name=data.name
    )
    session.commit()
    return user


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: int, data: UserUpdate, session: DB, actor: APIActor) -> User:
    user = service.set_user_role(session, actor=actor, user_id=user_id, role=data.role, is_active=data.is_active)
    session.commit()
    return user


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(session: DB, actor: APIActor) -> list:
    return service.list_tokens(session, actor=actor)


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(data: TokenCreate, session: DB, actor: APIActor) -> dict:
    """A new API token; the response is the only time the token is shown."""
    email = data.email
    if email is None:
        user = session.get(User, actor.user_id)
        email = user.email if user else ""
    token, secret = service.create_token(session, actor=actor, email=email, name=data.name)
    session.commit()
    return {**TokenRead.model_validate(token).model_dump(), "token": secret}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, session: DB, actor: APIActor) -> Response:
    service.revoke_token(session, actor=actor, token_id=token_id)
    session.commit()
    return Response(status_code=204)


@router.get("/audit", response_model=Page[AuditRead])
def audit_log(request: Request, session: DB, actor: APIActor, cursor: Cursor = None, limit: Limit = 50) -> dict:
    """Who did what, when: every write and every export of personal data (admins only)."""
    require(actor, "audit:read")
    return page_of(
        session, AUDIT_FILTERS, select(AuditEntry), request, schema=AuditRead, sort=None, cursor=cursor, limit=limit
    )
