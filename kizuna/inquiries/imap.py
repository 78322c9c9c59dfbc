"""E-mail in over IMAP: the worker reads the support mailbox (``KIZUNA_INQUIRY_IMAP_*``) every
``KIZUNA_INQUIRY_IMAP_POLL_SECONDS`` and threads each unread mail into the desk (email_in.receive).

A mail is marked \\Seen only after the transaction that recorded it committed: a crash in between reads it again
at the next poll, and its Message-ID makes that a no-op. A mail the desk refuses (no From address ...) is marked
seen too, with the reason logged, so that one bad mail cannot stop the mailbox; it stays in the folder.
The standard library's ``imaplib`` is enough for this (one connection, a few commands per poll).
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import new_session
from kizuna.errors import KizunaError
from kizuna.inquiries import email_in
from kizuna.outbox.registry import declare_pump

log = logging.getLogger(__name__)
ACTOR = Actor.system("inquiries-imap", origin="worker")


@dataclass
class PollResult:
    read: int = 0
    threaded: int = 0
    # Auto-replies and bounces (counted in ``threaded`` too), and those of them that matched no ticket.
    automatic: int = 0
    ignored: int = 0
    refused: list[str] = field(default_factory=list)


def _connect() -> Any:
    settings = get_settings()
    kind = imaplib.IMAP4_SSL if settings.inquiry_imap_ssl else imaplib.IMAP4
    client = kind(settings.inquiry_imap_host, settings.inquiry_imap_port, timeout=30)
    client.login(settings.inquiry_imap_user, settings.inquiry_imap_password)
    return client


def poll(engine: Engine) -> PollResult:
    """Read every unread mail of the folder once; returns what happened."""
    settings = get_settings()
    result = PollResult()
    client = _connect()
    try:
        status, _ = client.select(settings.inquiry_imap_folder)
        if status != "OK":
            raise KizunaError(f"IMAP folder {settings.inquiry_imap_folder!r} cannot be opened")
        _, found = client.uid("SEARCH", None, "UNSEEN")  # type: ignore[arg-type]
        for uid in (found[0] or b"").split():
            _, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in data if isinstance(part, tuple)), None)
            if raw is None:
                continue
            result.read += 1
            with new_session(engine) as session:
                try:
                    outcome = email_in.receive(session, actor=ACTOR, raw=raw)
                    session.commit()
                    result.threaded += 1
                    result.automatic += outcome.automatic is not None
                    result.ignored += outcome.ignored
                except KizunaError as exc:
                    session.rollback()
                    result.refused.append(f"uid {uid.decode()}: {exc.message}")
                    log.warning("inquiry mail uid %s refused: %s", uid.decode(), exc.message)
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    finally:
        # The server may already have closed the connection.
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return result


# When this process last polled; None until its first poll. Not 0.0: the monotonic clock counts from the
# machine's boot, so a worker started within poll_seconds of a boot would wait that long for its first poll.
_last_poll: float | None = None


@declare_pump("inquiries.imap")
def imap_pump(engine: Any, worker: str) -> int:
    """The worker's schedule: a poll when IMAP is configured and the interval has passed."""
    global _last_poll
    settings = get_settings()
    if not settings.inquiry_imap_host:
        return 0
    if _last_poll is not None and time.monotonic() - _last_poll < settings.inquiry_imap_poll_seconds:
        return 0
    _last_poll = time.monotonic()
    try:
        return poll(engine).read
    except (OSError, imaplib.IMAP4.error, KizunaError) as exc:
        log.warning("inquiry IMAP poll failed: %s", exc)
        return 0
