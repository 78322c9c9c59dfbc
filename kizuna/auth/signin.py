"""Signing in with a password: throttling, lockout, password rules, change and reset.

Each attempt is counted before its password is hashed, in a short transaction of its own, so that parallel
tries see each other at once and a locked account or address is refused without hashing: argon2 costs 64 MiB
and a core for about 0.1 s, and wrong guesses must not be able to slow the API for everyone else. On top of
that, at most ``signin_parallel_checks`` passwords are hashed at the same time in one process.
"""

from __future__ import annotations

import datetime as dt
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.models import SignInThrottle, UiSession, User
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import take_write_lock, utcnow
from kizuna.errors import NotAuthenticated, NotFound, TooManyAttempts, ValidationError
from kizuna.normalize import normalize_email

hasher = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 200
COMMON_PASSWORDS = Path(__file__).with_name("common_passwords.txt")
HASH_WAIT_SECONDS = 2.0
# Failed attempts older than this (and not locked) are forgotten: "in a row" means within a day.
FORGET_AFTER = dt.timedelta(days=1)
# Where a lock lasts "until an admin lifts it" (signin_lockout_minutes = 0).
FOREVER = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
_throttle = SignInThrottle.__table__


@lru_cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))


def check_password(password: str, *, email: str = "") -> None:
    """Refuse a password that is short, very common, one or two characters repeated, or the e-mail itself.

    The password is taken exactly as typed: leading and trailing spaces are part of it.
    """
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"password must be at least {MIN_PASSWORD} characters",
            field="password",
            key="error.password_too_short",
            params={"min": MIN_PASSWORD},
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationError(
            f"password must be at most {MAX_PASSWORD} characters",
            field="password",
            key="error.password_too_long",
            params={"max": MAX_PASSWORD},
        )
    folded = password.casefold()
    if folded in common_passwords() or len(set(folded)) <= 2:
        raise ValidationError(
            "this password is too common or too easy to guess; choose another",
            field="password",
            key="error.password_common",
        )
    if email and folded.strip() in (email.casefold(), email.casefold().split("@")[0]):
        raise ValidationError(
            "the password must not be your e-mail address", field="password", key="error.password_is_email"
        )


def _hash_slot() -> threading.BoundedSemaphore:
    return _slots(max(1, get_settings().signin_parallel_checks))


@lru_cache
def _slots(count: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(count)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; hashes even without a stored hash, so timing does not tell accounts apart."""
    slot = _hash_slot()
    # A short wait: a request queued here holds a server thread that other API requests need.
    if not slot.acquire(timeout=HASH_WAIT_SECONDS):
        raise TooManyAttempts("the server is busy checking other sign-ins; try again in a moment")
    try:
        if not password_hash:
            hasher.hash(password)
            return False
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    finally:
        slot.release()


def _count(
    conn: Connection, key: str, *, now: dt.datetime, window: dt.timedelta | None
) -> tuple[int, dt.datetime | None]:
    """Add one attempt to ``key``'s row (starting it over when its window or lock has passed); (count, locked_until)."""
    row = conn.execute(select(_throttle).where(_throttle.c.key == key)).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(_throttle.insert().values(key=key, failures=1, first_at=now, locked_until=None))
            return 1, None
        except IntegrityError:  # a parallel attempt created it first
            row = conn.execute(select(_throttle).where(_throttle.c.key == key)).one()
    expired = (window is not None and row.first_at + window <= now) or (
        row.locked_until is not None and row.locked_until <= now
    )
    if expired:
        conn.execute(
            update(_throttle).where(_throttle.c.key == key).values(failures=1, first_at=now, locked_until=None)
        )
        return 1, None
    conn.execute(update(_throttle).where(_throttle.c.key == key).values(failures=_throttle.c.failures + 1))
    failures = conn.execute(select(_throttle.c.failures).where(_throttle.c.key == key)).scalar_one()
    return failures, row.locked_until


def _forget_old(conn: Connection, *, now: dt.datetime, keep: dt.timedelta) -> None:
    """Drop rows nobody needs: unlocked, and counting from longer ago than ``keep`` (tried e-mails pile up)."""
    stale = (_throttle.c.first_at < now - keep) & (
        _throttle.c.locked_until.is_(None) | (_throttle.c.locked_until < now)
    )
    conn.execute(delete(_throttle).where(stale))


def _lock(conn: Connection, key: str, until: dt.datetime) -> None:
    conn.execute(update(_throttle).where(_throttle.c.key == key).values(locked_until=until))


def account_key(email: str) -> str:
    return f"account:{email}"


def sign_in(session: Session, *, email: str, password: str, address: str) -> User:
    """The user these credentials sign in, or NotAuthenticated (audited) / TooManyAttempts (no password check).

    Failures are written to ``session`` (the audit entry) and the caller commits them even though it refuses.
    """
    settings = get_settings()
    try:
        email = normalize_email(email, field="email")
    except ValidationError:
        email = email.strip().casefold()[:320]
    now = utcnow()
    window = dt.timedelta(minutes=settings.signin_window_minutes)
    lockout = dt.timedelta(minutes=settings.signin_lockout_minutes) if settings.signin_lockout_minutes else None
    user = session.scalar(select(User).where(User.email == email))
    newly_locked = False
    # Its own transaction, committed before hashing, so that parallel attempts count each other.
    with session.get_bind().connect() as conn, conn.begin():
        take_write_lock(conn)
        _forget_old(conn, now=now, keep=max(window, FORGET_AFTER))
        by_address, address_until = _count(conn, f"address:{address}", now=now, window=window)
        by_account, account_until = _count(conn, account_key(email), now=now, window=None)
        if address_until is None and by_address > settings.signin_address_failures:
            address_until = now + window
            _lock(conn, f"address:{address}", address_until)
        if account_until is None and by_account > settings.signin_account_failures:
            account_until = now + lockout if lockout else FOREVER
            _lock(conn, account_key(email), account_until)
            newly_locked = True
    if newly_locked and user is not None:
        audit.record(
            session,
            actor=Actor(label=email, role="none"),
            action="user.locked",
            entity_type="user",
            entity_id=user.id,
            details={"address": address, "failures": by_account - 1},
            summary=f"sign-in locked for {email} after {by_account - 1} wrong passwords",
        )
    if account_until is not None and account_until > now:
        raise TooManyAttempts("too many failed sign-ins for this account; try later or ask an admin to unlock it")
    if address_until is not None and address_until > now:
        raise TooManyAttempts("too many failed sign-ins from this address; try again later")
    usable = user is not None and user.is_active and user.password_hash
    if not verify_password(user.password_hash if usable else None, password):
        audit.record(
            session,
            actor=Actor(label=email or "(empty)", role="none"),
            action="user.login_failed",
            entity_type="user",
            entity_id=user.id if user else None,
            details={"address": address},
            summary=f"failed sign-in as {email}",
        )
        raise NotAuthenticated("wrong email or password")
    assert user is not None and user.password_hash
    _clear(session, email)
    # The attempt was counted against the address in advance; only failures are meant to count there.
    address_row = SignInThrottle.key == f"address:{address}"
    session.execute(
        update(SignInThrottle)
        .where(address_row, SignInThrottle.failures > 0)
        .values(failures=SignInThrottle.failures - 1)
    )
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


def _clear(session: Session, email: str) -> None:
    session.execute(delete(SignInThrottle).where(SignInThrottle.key == account_key(email)))


def locked_emails(session: Session, *, now: dt.datetime | None = None) -> set[str]:
    """The e-mails whose sign-in is locked right now (for the admin's users page)."""
    now = now or utcnow()
    rows = session.scalars(
        select(SignInThrottle.key).where(SignInThrottle.key.startswith("account:"), SignInThrottle.locked_until > now)
    )
    return {key.removeprefix("account:") for key in rows}


def _user_by_email(session: Session, email: str) -> User:
    wanted = normalize_email(email, field="email")
    user = session.scalar(select(User).where(User.email == wanted))
    if user is None:
        raise NotFound(f"no user with email {email}", field="email")
    return user


def unlock_user(session: Session, *, actor: Actor, email: str) -> User:
    """Lift the sign-in lock of an account (and forget its failed attempts)."""
    require(actor, "users:manage")
    user = _user_by_email(session, email)
    _clear(session, user.email)
    audit.record(session, actor=actor, action="user.unlock", entity_type="user", entity_id=user.id, summary=user.email)
    return user


def _new_password(session: Session, user: User, password: str, *, keep_session: UiSession | None = None) -> None:
    check_password(password, email=user.email)
    user.password_hash = hasher.hash(password)
    # Whoever knew the old password may be signed in somewhere: their browser sessions end.
    query = delete(UiSession).where(UiSession.user_id == user.id)
    if keep_session is not None:
        query = query.where(UiSession.id != keep_session.id)
    session.execute(query)


def change_password(
    session: Session,
    *,
    user: User,
    current: str,
    new: str,
    address: str,
    keep_session: UiSession | None = None,
) -> None:
    """A user changes their own password; the current one is checked (and throttled) like a sign-in."""
    if not user.password_hash:
        raise ValidationError("this account has no password to change; ask an admin to set one", field="password")
    try:
        sign_in(session, email=user.email, password=current, address=address)
    except NotAuthenticated as exc:
        raise ValidationError(
            "the current password is wrong", field="current_password", key="error.password_wrong_current"
        ) from exc
    _new_password(session, user, new, keep_session=keep_session)
    user.must_change_password = False
    audit.record(session, actor=Actor(label=user.email, role=user.role, user_id=user.id), action="user.password_change",
                 entity_type="user", entity_id=user.id, summary=user.email)  # fmt: skip


def set_password(
    session: Session, *, actor: Actor, email: str, password: str, details: dict[str, Any] | None = None
) -> User:
    """An admin sets (resets) a user's password; the user's sign-in lock is lifted and their sessions end."""
    require(actor, "users:manage")
    user = _user_by_email(session, email)
    _new_password(session, user, password)
    _clear(session, user.email)
    audit.record(session, actor=actor, action="user.password_reset", entity_type="user", entity_id=user.id,
                 details=details, summary=user.email)  # fmt: skip
    return user
