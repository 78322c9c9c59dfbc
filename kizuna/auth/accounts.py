"""What an admin does to other users' accounts: change a role, deactivate and reactivate, reset a password.

Each action checks ``users:manage``, writes its own audit row (``user.role_change``, ``user.deactivate``,
``user.reactivate``, ``user.password_reset``) in the caller's transaction and never commits. No action may leave
the installation without an active admin: the last one can be neither demoted nor deactivated, by themselves or
by anyone else.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from kizuna.auth import audit, signin
from kizuna.auth.models import UiSession, User
from kizuna.auth.permissions import ROLES, Actor, require
from kizuna.errors import NotFound, ValidationError
from kizuna.normalize import normalize_email

# A generated temporary password: 16 characters from an alphabet without look-alikes (0/O, 1/l/I), so that it
# can be read out over the phone; about 90 bits.
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
GENERATED_LENGTH = 16


def get_user(session: Session, *, actor: Actor, user_id: int) -> User:
    """The user ``user_id`` for an admin; NotFound otherwise (checked after the permission, so ids are not probed)."""
    require(actor, "users:manage")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", key="error.http_404")
    return user


def user_id_for(session: Session, *, actor: Actor, email: str) -> int:
    """The id of the user with sign-in ``email`` (for the CLI, which names users by e-mail); NotFound otherwise."""
    require(actor, "users:manage")
    user_id = session.scalar(select(User.id).where(User.email == normalize_email(email, field="email")))
    if user_id is None:
        raise NotFound(f"no user with email {email}", field="email")
    return user_id


def _check_admin_remains(session: Session, user: User) -> None:
    """Refuse when ``user`` is the only active admin (the caller is about to demote or deactivate them)."""
    if user.role != "admin" or not user.is_active:
        return
    others = session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.is_active, User.id != user.id)
    )
    if not others:
        raise ValidationError(
            "cannot demote or disable the last active admin; make another admin first",
            field="role",
            key="error.last_admin",
        )


def _end_access(session: Session, user: User) -> None:
    """End the user's browser sessions and stop their API tokens at once (the token cache forgets them)."""
    from kizuna.auth.service import forget_user_tokens

    session.execute(delete(UiSession).where(UiSession.user_id == user.id))
    forget_user_tokens(session, user.id)


def change_role(session: Session, *, actor: Actor, user_id: int, role: str) -> User:
    """Give user ``user_id`` another role; audited as ``user.role_change`` when it changes."""
    user = get_user(session, actor=actor, user_id=user_id)
    if role not in ROLES:
        raise ValidationError(
            f"unknown role '{role}'; choose one of {', '.join(ROLES)}",
            field="role",
            key="error.literal_error",
            params={"expected": ", ".join(ROLES)},
        )
    if role == user.role:
        return user
    if role != "admin":
        _check_admin_remains(session, user)
    before = user.role
    user.role = role
    audit.record(
        session,
        actor=actor,
        action="user.role_change",
        entity_type="user",
        entity_id=user.id,
        details={"role": [before, role]},
        summary=f"{user.email}: {before} → {role}",
    )
    # The token cache holds the old role for a few seconds otherwise.
    from kizuna.auth.service import forget_user_tokens

    forget_user_tokens(session, user.id)
    return user


def set_active(session: Session, *, actor: Actor, user_id: int, active: bool) -> User:
    """Deactivate (sign-in refused, sessions ended, API tokens stop working) or reactivate user ``user_id``.

    Audited as ``user.deactivate`` / ``user.reactivate``; asking for the state the user is already in changes
    nothing and writes nothing.
    """
    user = get_user(session, actor=actor, user_id=user_id)
    if user.is_active == active:
        return user
    if not active:
        _check_admin_remains(session, user)
    user.is_active = active
    if not active:
        _end_access(session, user)
    audit.record(
        session,
        actor=actor,
        action="user.reactivate" if active else "user.deactivate",
        entity_type="user",
        entity_id=user.id,
        details={"is_active": [not active, active]},
        summary=user.email,
    )
    return user


def generate_password() -> str:
    """A random temporary password that passes ``signin.check_password``."""
    while True:
        password = "".join(secrets.choice(_ALPHABET) for _ in range(GENERATED_LENGTH))
        try:
            signin.check_password(password)
        except ValidationError:  # pragma: no cover - vanishingly rare (a common or repetitive draw)
            continue
        return password


def reset_password(session: Session, *, actor: Actor, user_id: int, password: str | None = None) -> str:
    """Set a temporary password for user ``user_id`` (generated when ``password`` is None); returns it.

    The user must choose their own at their next sign-in in the UI; their sign-in lock is lifted and their
    browser sessions end. Audited as ``user.password_reset`` (the password itself is never recorded).
    """
    user = get_user(session, actor=actor, user_id=user_id)
    generated = password is None
    temporary = generate_password() if password is None else password
    signin.set_password(session, actor=actor, email=user.email, password=temporary, details={"generated": generated})
    user.must_change_password = True
    return temporary
