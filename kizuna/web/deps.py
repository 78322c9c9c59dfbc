"""What every HTTP edge needs: a database session per request and the acting user (API token or UI login)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
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
Authorization = Annotated[str | None, Header()]
T = TypeVar("T")


async def with_api_actor(request: Request, authorization: str | None, work: Callable[[Session, Actor], T]) -> T:
    """``work(session, actor)`` as ``DB`` + ``APIActor`` would give them, for short hot reads.

    Sync dependencies each cost a hop to the thread pool (the session's opening and closing, the
    actor, the handler: four), which on a busy 2-core server is much of a small request's time.
    Here the work takes one hop (a few at once per process, see ``_hot_read_limiter``), or none on
    SQLite: an in-process library whose short reads cost less than the hop (in WAL mode readers never
    wait for writers). ``work`` must be a bounded read. The declared ``authorization`` header and the
    errors are the same as with the dependencies.
    """

    def run() -> T:
        session = new_session(request.app.state.engine)
        try:
            return work(session, api_actor(session, authorization))
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    if request.app.state.engine.dialect.name == "sqlite":
        return run()
    return await anyio.to_thread.run_sync(run, limiter=_hot_read_limiter())


# One limiter per event loop (a server process has one; tests start several), made on first use.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _hot_read_limiter() -> anyio.CapacityLimiter:
    """How many hot reads of this process run in threads at once; the others wait their turn, first come, first
    served. Through the default pool (40 threads) every open connection's read ran at once: the threads took
    turns on the GIL and on the database's cores, so each read took about as long as all of them together.
    Two per process keep one read in Python while another waits on PostgreSQL. Measured with
    benchmarks/customer360.py (1M customers, 32 connections, 2 workers, 2 cores): p95 296-310 ms through the
    pool, 185-257 ms with 4 at once, 154-189 ms with 2."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(get_settings().hot_reads_per_process)
    return limiter


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


def client_address(request: Request) -> str:
    """The address a request came from (uvicorn takes X-Forwarded-For from the proxies FORWARDED_ALLOW_IPS trusts)."""
    return request.client.host if request.client else "unknown"


def database_url(request: Request) -> str:
    """The URL of the database this app serves (what the analytics read; tests and embedders pass their own)."""
    return request.app.state.engine.url.render_as_string(hide_password=False)
