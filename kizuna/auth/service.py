"""Users, passwords, API tokens and UI sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time

from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import ApiToken, UiSession, User
from kizuna.auth.permissions import ROLES, Actor, require
from kizuna.auth.signin import check_password, hasher
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotAuthenticated, NotFound, ValidationError
from kizuna.normalize import normalize_email

TOKEN_PREFIX = "kz_"  # noqa: S105 - a visible prefix, not a secret


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def actor_for(user: User) -> Actor:
    return Actor(label=user.email, role=user.role, user_id=user.id)


def create_user(
    session: Session,
    *,
    actor: Actor,
    email: str,
    password: str | None,
    role: str,
    name: str = "",
    check_strength: bool = True,
) -> User:
    require(actor, "users:manage")
    if role not in ROLES:
        raise ValidationError(f"unknown role '{role}'; choose one of {', '.join(ROLES)}", field="role")
    email = normalize_email(email, field="email")
    if password is not None and check_strength:
        check_password(password, email=email)
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(
            f"a user with email {email} already exists",
            field="email",
            key="error.user_email_taken",
            params={"email": email},
        )
    user = User(email=email, role=role, name=name, password_hash=hasher.hash(password) if password else None)
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=user.id,
        details={"email": email, "role": role},
        summary=f"created user {email} ({role})",
    )
    return user


def list_users(session: Session, *, actor: Actor) -> list[User]:
    require(actor, "users:manage")
    return list(session.scalars(select(User).order_by(User.id)))


def user_names(session: Session, user_ids: set[int]) -> dict[int, str]:
    """User id -> the name a page shows for them (their name, else their e-mail)."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(user_ids)))
    return {user_id: name or email for user_id, name, email in rows}


def user_emails(session: Session, user_ids: set[int]) -> dict[int, str]:
    """User id -> e-mail address."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
    return {user_id: email for user_id, email in rows}


def set_user_role(session: Session, *, actor: Actor, user_id: int, role: str, is_active: bool | None = None) -> User:
    """The API's user update: a role change and, optionally, deactivation or reactivation (see ``accounts``)."""
    from kizuna.auth import accounts

    if role not in ROLES:
        raise ValidationError(f"unknown role '{role}'", field="role")
    # Deactivating first: demoting the last admin and deactivating them in one request is refused either way.
    if is_active is not None:
        accounts.set_active(session, actor=actor, user_id=user_id, active=is_active)
    return accounts.change_role(session, actor=actor, user_id=user_id, role=role)


def create_token(session: Session, *, actor: Actor, email: str, name: str) -> tuple[ApiToken, str]:
    """Create an API token for a user; returns the row and the token, which is never stored."""
    wanted = normalize_email(email, field="email")
    if actor.label != wanted:
        # Checked before the lookup so that a non-admin cannot probe which e-mails have accounts.
        require(actor, "tokens:manage")
    user = session.scalar(select(User).where(User.email == wanted))
    if user is None:
        raise NotFound(f"no user with email {email}", field="email")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=secret[:10], token_hash=_sha256(secret))
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        entity_type="api_token",
        entity_id=token.id,
        details={"user": user.email, "name": name},
        summary=f"API token '{name}' for {user.email}",
    )
    return token, secret


def revoke_token(session: Session, *, actor: Actor, token_id: int) -> None:
    token = session.get(ApiToken, token_id)
    # Someone else's token id is "not found" to anyone who may not manage tokens.
    if token is None or (actor.user_id != token.user_id and not actor.can("tokens:manage")):
        raise NotFound(f"token {token_id} not found")
    token.revoked_at = utcnow()
    _forget_tokens(session, token_hash=token.token_hash)
    audit.record(session, actor=actor, action="token.revoke", entity_type="api_token", entity_id=token.id)


def list_tokens(session: Session, *, actor: Actor) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    if not actor.can("tokens:manage"):
        query = query.where(ApiToken.user_id == actor.user_id)
    return list(session.scalars(query))


def user_for_token(session: Session, secret: str) -> User:
    row = session.execute(
        select(User, ApiToken.id)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == _sha256(secret), ApiToken.revoked_at.is_(None))
    ).first()
    if row is None or not row[0].is_active:
        raise NotAuthenticated("invalid or revoked API token")
    return row[0]


# API tokens are checked on every request; a small per-process cache saves the lookup. An entry lives
# TOKEN_CACHE_SECONDS at most, so a token revoked (or a user deactivated or given a new role) by another
# process stops working within that time; in this process the entry is dropped at once and again on commit.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_MAX = 10_000
_token_cache: dict[tuple[int, str], tuple[float, Actor]] = {}
_token_lock = threading.Lock()


def actor_for_token(session: Session, secret: str) -> Actor:
    """The acting user of an API token, as ``actor_for(user_for_token(...))``, cached for a few seconds."""
    key = (id(session.get_bind()), _sha256(secret))
    now = time.monotonic()
    hit = _token_cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    actor = actor_for(user_for_token(session, secret))
    with _token_lock:
        if len(_token_cache) >= _TOKEN_CACHE_MAX:
            _token_cache.clear()
        _token_cache[key] = (now + TOKEN_CACHE_SECONDS, actor)
    return actor


def forget_user_tokens(session: Session, user_id: int) -> None:
    """Drop the cached actors of ``user_id``'s API tokens now and again at commit (after a role or state change)."""
    _forget_tokens(session, user_id=user_id)


def _forget_tokens(session: Session, *, token_hash: str | None = None, user_id: int | None = None) -> None:
    def forget(*_: object) -> None:
        with _token_lock:
            for key, (_, actor) in list(_token_cache.items()):
                if key[1] == token_hash or (user_id is not None and actor.user_id == user_id):
                    _token_cache.pop(key, None)

    forget()
    event.listen(session, "after_commit", forget, once=True)


def start_session(session: Session, *, user: User) -> tuple[str, UiSession]:
    secret = secrets.token_urlsafe(32)
    hours = get_settings().session_hours
    ui = UiSession(
        user_id=user.id,
        token_hash=_sha256(secret),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + dt.timedelta(hours=hours),
    )
    session.add(ui)
    session.execute(delete(UiSession).where(UiSession.expires_at < utcnow()))
    audit.record(session, actor=actor_for(user), action="user.login", entity_type="user", entity_id=user.id)
    return secret, ui


def resume_session(session: Session, secret: str) -> tuple[User, UiSession]:
    row = session.execute(
        select(User, UiSession)
        .join(UiSession, UiSession.user_id == User.id)
        .where(UiSession.token_hash == _sha256(secret), UiSession.expires_at > utcnow())
    ).first()
    if row is None or not row[0].is_active:
        raise NotAuthenticated("please sign in")
    return row[0], row[1]


def end_session(session: Session, secret: str) -> None:
    session.execute(delete(UiSession).where(UiSession.token_hash == _sha256(secret)))


FLASH_SECONDS = 300


def set_flash(ui_session: UiSession, *, kind: str, value: str) -> None:
    """Keep ``value`` for the next page this browser session opens (at most FLASH_SECONDS from now).

    The redirect after a POST carries nothing secret in its URL; the next GET takes the value from here.
    """
    until = utcnow() + dt.timedelta(seconds=FLASH_SECONDS)
    ui_session.flash = {"kind": kind, "value": value, "until": until.isoformat()}


def take_flash(ui_session: UiSession, *, kind: str) -> str | None:
    """The value kept by ``set_flash`` for ``kind``, once: it is cleared (the caller commits) and expires."""
    flash = ui_session.flash
    if not flash or flash.get("kind") != kind:
        return None
    ui_session.flash = None
    if dt.datetime.fromisoformat(flash["until"]) < utcnow():
        return None
    return str(flash["value"])


def ensure_admin(session: Session, *, email: str, password: str) -> tuple[User, bool]:
    """The first admin (for ``kizuna demo``); returns (user, created).

    The demo's password is printed for everyone to read and so is on the common-password list; it is let
    through here only, and the demo tells the admin to change it.
    """
    user = session.scalar(select(User).where(User.email == email))
    if user is not None:
        return user, False
    count = session.scalar(select(func.count()).select_from(User)) or 0
    user = create_user(
        session,
        actor=Actor.system("setup"),
        email=email,
        password=password,
        role="admin",
        name="Admin" if count == 0 else "",
        check_strength=False,
    )
    return user, True


def actor_for_email(session: Session, email: str) -> Actor:
    """The active user with this e-mail as an actor (a CLI run recorded as a person); NotFound otherwise."""
    from kizuna.errors import NotFound

    user = session.scalar(select(User).where(User.email == normalize_email(email, field="email")))
    if user is None or not user.is_active:
        raise NotFound(f"no active user with e-mail {email}", field="as")
    return actor_for(user)


def cli_actor() -> Actor:
    """Who runs a CLI command when no user is named: the operating-system user and host, with admin rights
    (whoever can run the CLI can read the database), recorded so the audit log says who it was."""
    import getpass
    import socket

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(label=f"cli:{who}@{socket.gethostname()}"[:320], role="admin", origin="cli")


def email_of(session: Session, user_id: int) -> str:
    """The e-mail of user ``user_id`` (pages that act on a user by id); NotFound otherwise."""
    from kizuna.errors import NotFound

    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user.email
