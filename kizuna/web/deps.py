"""What every HTTP edge needs: a database session per request and the acting user (API token or UI login)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor
from kizuna.db import new_session
from kizuna.errors import NotAuthenticated, PreconditionFailed

SESSION_COOKIE = "kizuna_session"


def db_session(request: Request) -> Iterator[Session]:
    """A session per request; the handler commits its own writes (services never commit)."""
    session = new_session(request.app.state.engine)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DB = Annotated[Session, Depends(db_session)]


def api_actor(session: DB, authorization: Annotated[str | None, Header()] = None) -> Actor:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise NotAuthenticated(
            "send an API token as 'Authorization: Bearer <token>' (create one: kizuna tokens create)"
        )
    return auth.actor_for_token(session, authorization[7:].strip())


APIActor = Annotated[Actor, Depends(api_actor)]


def expected_version(if_match: str | None) -> int | None:
    """The version named by an ``If-Match: W/"3"`` (or ``"3"``) header; None when absent or ``*``."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    try:
        return int(tag)
    except ValueError as exc:
        raise PreconditionFailed(f"If-Match '{if_match}' is not an ETag this server issued") from exc


def etag(version: int) -> str:
    return f'W/"{version}"'
