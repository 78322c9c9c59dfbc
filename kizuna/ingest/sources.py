"""Sources: each website or app that sends events, with its write key (shown once, kept hashed)."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotAuthenticated, NotFound, ValidationError
from kizuna.ingest.models import Source

KEY_PREFIX = "kzw_"


class WrongWriteKey(NotAuthenticated):
    """No live source has this write key (unknown, mistyped or revoked)."""


@dataclass(frozen=True)
class KnownSource:
    id: int
    name: str


def hash_key(key: str) -> str:
    # A write key is 32 random bytes: a plain SHA-256 is enough (no password to stretch), and it lets the
    # tracking API find the source with one indexed lookup.
    return hashlib.sha256(key.encode()).hexdigest()


def create_source(session: Session, *, actor: Actor, name: str) -> tuple[Source, str]:
    """A new source and its write key (the only time the key is readable)."""
    require(actor, "sources:manage")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError("a source needs a name of 1-100 characters", field="name")
    if session.scalar(select(Source.id).where(Source.name == name)) is not None:
        raise Conflict(f"a source named {name!r} exists already", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    source = Source(name=name, key_hash=hash_key(key), key_prefix=key[:12], created_by=actor.label)
    session.add(source)
    session.flush()
    audit.record(session, actor=actor, action="source.create", entity_type="source", entity_id=source.id, summary=name)
    # Tracking makes anonymous profiles from now on: the worker's daily purge of the old ones starts with it.
    from kizuna.ingest import retention

    retention.ensure_scheduled(session)
    return source, key


def list_sources(session: Session, *, actor: Actor) -> list[Source]:
    require(actor, "sources:manage")
    return list(session.scalars(select(Source).order_by(Source.id)))


def get_source(session: Session, ref: str | int) -> Source:
    """A source by id or by name."""
    query = select(Source).where(Source.id == int(ref) if str(ref).isdigit() else Source.name == str(ref))
    source = session.scalar(query)
    if source is None:
        raise NotFound(f"source {ref} not found")
    return source


def revoke_source(session: Session, *, actor: Actor, ref: str | int) -> Source:
    """Stop accepting the source's write key; its events stay."""
    require(actor, "sources:manage")
    source = get_source(session, ref)
    forget_keys()
    # And again once the revocation is committed: a batch may have read the source live in between.
    event.listen(session, "after_commit", lambda _session: forget_keys(), once=True)
    if source.revoked_at is None:
        source.revoked_at = utcnow()
        audit.record(
            session, actor=actor, action="source.revoke", entity_type="source", entity_id=source.id, summary=source.name
        )
    return source


# Live sources found by write key, kept for a few seconds: every tracking batch names its key, and reading the
# source each time was a statement per batch. A revocation empties this process's cache at once; another server
# process may take the revoked key for up to ``KEY_CACHE_SECONDS`` more.
KEY_CACHE_SECONDS = 5.0
_KNOWN: dict[tuple[str, str], tuple[float, KnownSource]] = {}
_KNOWN_LOCK = threading.Lock()


def authenticate(session: Session, key: str | None) -> KnownSource:
    """The live source whose write key this is; ``WrongWriteKey`` otherwise."""
    if not key:
        raise WrongWriteKey("no write key: send it as the HTTP Basic user name (or as writeKey in the body)")
    cache_key = (str(session.get_bind().url), hash_key(key))
    now = time.monotonic()
    with _KNOWN_LOCK:
        cached = _KNOWN.get(cache_key)
    if cached is not None and cached[0] > now:
        return cached[1]
    row = session.execute(
        select(Source.id, Source.name, Source.revoked_at).where(Source.key_hash == cache_key[1])
    ).first()
    if row is None:
        raise WrongWriteKey("unknown write key")
    if row.revoked_at is not None:
        raise WrongWriteKey(f"the write key of source {row.name!r} was revoked")
    known = KnownSource(id=row.id, name=row.name)
    with _KNOWN_LOCK:
        if len(_KNOWN) > 1000:  # only live keys are kept; a bound all the same
            _KNOWN.clear()
        _KNOWN[cache_key] = (now + KEY_CACHE_SECONDS, known)
    return known


def forget_keys() -> None:
    """Empty this process's cache of write keys (a source was revoked)."""
    with _KNOWN_LOCK:
        _KNOWN.clear()


# Built once: every tracking batch runs it.
_COUNT_USE = (
    update(Source.__table__)
    .where(Source.__table__.c.id == bindparam("source_id"))
    .values(
        last_seen_at=bindparam("now", type_=Source.__table__.c.last_seen_at.type),
        event_count=Source.__table__.c.event_count + bindparam("accepted"),
        rejected_count=Source.__table__.c.rejected_count + bindparam("rejected"),
    )
)


def count_use(session: Session, source_id: int, *, accepted: int, rejected: int) -> None:
    params = {"source_id": source_id, "now": utcnow(), "accepted": accepted, "rejected": rejected}
    session.connection().execute(_COUNT_USE, params)
