"""Open pixel and click redirect with signed tokens, and what a message's recipient did, recorded once.

A click link carries the target URL inside a token signed for the message (``keys.sign("tracking", ...)``), made
only for the http(s) links found in the rendered mail: the redirect goes to a URL this Kizuna put in that mail and
nowhere else, so the endpoint is no open redirect. Every open, click, unsubscribe, bounce and complaint is a
message event, stamps the message (the first time) and goes to the outbox as ``message.<what>`` so that journeys,
goals and the timeline can react.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from html import escape, unescape
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from kizuna import keys
from kizuna.db import utcnow
from kizuna.messaging.models import Message, MessageEvent
from kizuna.outbox.service import emit

PURPOSE = "tracking"
# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# The stamp each kind of event sets the first time, and the outbox topic it emits.
STAMPS = {
    "open": "opened_at",
    "click": "clicked_at",
    "unsubscribe": "unsubscribed_at",
    "bounce": "bounced_at",
    "complaint": "complained_at",
}
TOPICS = {
    "open": "message.opened",
    "click": "message.clicked",
    "unsubscribe": "message.unsubscribed",
    "bounce": "message.bounced",
    "complaint": "message.complained",
}
_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(["'])(https?://[^"']+)\2([^>]*>)""", re.IGNORECASE)


def open_token(message_id: int) -> str:
    return keys.sign(PURPOSE, f"o|{message_id}")


def click_token(message_id: int, url: str) -> str:
    return keys.sign(PURPOSE, f"c|{message_id}|{url}")


def read_open(token: str) -> int:
    kind, _, rest = keys.unsign(PURPOSE, token).partition("|")
    if kind != "o" or not rest.isdigit():
        raise keys.BadToken("not an open-tracking link")
    return int(rest)


def read_click(token: str) -> tuple[int, str]:
    kind, _, rest = keys.unsign(PURPOSE, token).partition("|")
    message_id, _, url = rest.partition("|")
    if kind != "c" or not message_id.isdigit() or not url.lower().startswith(("http://", "https://")):
        raise keys.BadToken("not a click-tracking link")
    return int(message_id), url


def track_links(html: str, *, message_id: int, base_url: str, sign: Callable[[str], str] | None = None) -> str:
    """``html`` with each http(s) link going through the click redirect and an open pixel at the end.

    Links marked ``data-kizuna-untracked`` (the unsubscribe link) are left as they are. ``sign``: a
    ``keys.signer("tracking")`` made once for many mails.
    """
    base = base_url.rstrip("/")
    sign = sign or keys.signer(PURPOSE)

    def rewrite(match: re.Match[str]) -> str:
        tag_start, quote, href, tag_end = match.groups()
        if "data-kizuna-untracked" in tag_start or "data-kizuna-untracked" in tag_end:
            return match.group(0)
        target = unescape(href)
        return f"{tag_start}{quote}{base}/t/c/{sign(f'c|{message_id}|{target}')}{quote}{tag_end}"

    tracked = _HREF.sub(rewrite, html)
    pixel = f'<img src="{escape(base)}/t/o/{sign(f"o|{message_id}")}" width="1" height="1" alt="" style="display:none">'
    lower = tracked.lower()
    at = lower.rfind("</body>")
    return tracked[:at] + pixel + tracked[at:] if at >= 0 else tracked + pixel


def payload(message: Message, **extra: Any) -> dict[str, Any]:
    """What ``message.<event>`` outbox messages carry: the message and where it came from."""
    return {
        "message_id": message.id,
        "customer_id": message.customer_id,
        "channel": message.channel,
        "kind": message.kind,
        "source": message.source,
        "source_id": message.source_id,
        "source_step": message.source_step,
        "variant": message.variant,
        "enrollment_id": message.enrollment_id,
        **extra,
    }


def record(
    session: Session,
    message: Message,
    kind: str,
    *,
    url: str | None = None,
    details: dict[str, Any] | None = None,
    origin: str = "tracking",
    emit_repeats: bool = False,
) -> bool:
    """Record one event on a message; returns whether it was the first of its kind (the stamp was set).

    The first of each kind goes to the outbox; later ones only when ``emit_repeats`` (every click does, every
    open of an already-opened mail does not: image proxies and reloads would flood the journeys).
    """
    now = utcnow()
    session.add(
        MessageEvent(
            message_id=message.id,
            customer_id=message.customer_id,
            kind=kind,
            url=url[:2000] if url else None,
            details=details or {},
            occurred_at=now,
        )
    )
    stamp = STAMPS.get(kind)
    first = False
    if stamp is not None:
        column = getattr(Message, stamp)
        # Conditional, so two requests at once cannot both count as the first.
        result = session.execute(
            update(Message)
            .where(Message.id == message.id, column.is_(None))
            .values({stamp: now})
            .execution_options(synchronize_session=False)
        )
        first = result.rowcount == 1
        if first:
            setattr(message, stamp, now)
    if kind in TOPICS and (first or emit_repeats):
        extra = {"url": url} if url else {}
        emit(session, TOPICS[kind], payload(message, **extra), customer_id=message.customer_id, origin=origin)
    return first


def opened(session: Session, token: str) -> None:
    """An open pixel was fetched: record it (``keys.BadToken`` for a forged one)."""
    message = session.get(Message, read_open(token))
    if message is not None:
        record(session, message, "open")


def clicked(session: Session, token: str) -> str:
    """A tracked link was followed: record it and return where it goes (a URL that was in the mail)."""
    message_id, url = read_click(token)
    message = session.get(Message, message_id)
    if message is not None:
        if message.opened_at is None:  # the mail was read, whether or not its images were loaded
            record(session, message, "open", details={"implied_by": "click"})
        record(session, message, "click", url=url, emit_repeats=True)
    return url
