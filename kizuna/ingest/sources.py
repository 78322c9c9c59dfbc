"""Sources: each website or app that sends events, with its write key (shown once, kept hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
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
    if source.revoked_at is None:
        source.revoked_at = utcnow()
        audit.record(
            session, actor=actor, action="source.revoke", entity_type="source", entity_id=source.id, summary=source.name
        )
    return source


def authenticate(session: Session, key: str | None) -> KnownSource:
    """The live source whose write key this is; ``WrongWriteKey`` otherwise."""
    if not key:
        raise WrongWriteKey("no write key: send it as the HTTP Basic user name (or as writeKey in the body)")
    row = session.execute(
        select(Source.id, Source.name, Source.revoked_at).where(Source.key_hash == hash_key(key))
    ).first()
    if row is None:
        raise WrongWriteKey("unknown write key")
    if row.revoked_at is not None:
        raise WrongWriteKey(f"the write key of source {row.name!r} was revoked")
    return KnownSource(id=row.id, name=row.name)


def count_use(session: Session, source_id: int, *, accepted: int, rejected: int) -> None:
    session.execute(
        update(Source)
        .where(Source.id == source_id)
        .values(
            last_seen_at=utcnow(),
            event_count=Source.event_count + accepted,
            rejected_count=Source.rejected_count + rejected,
        )
    )
