"""The channels a message goes out on (email, LINE, webhook), behind one small interface the sender uses.

A channel resolves addresses, renders a message for itself, and sends over a connection the sender opens once
per batch (one SMTP connection, one HTTP client). A send either returns (the receiver accepted it: the sender
records that at once) or raises ``TemporaryFailure`` (try again later, with back-off) or ``PermanentFailure``
(give up, with the reason). Every attempt carries ``Outgoing.delivery_key`` so a repeat is recognisable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session


class SendFailure(Exception):
    """Base of the two ways a send can fail; ``reason`` is a stable code stored on the message."""

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class TemporaryFailure(SendFailure):
    """The receiver is down, busy or answered 4xx/429: the message stays queued and is retried with back-off."""


class PermanentFailure(SendFailure):
    """The receiver refused this message for good (unknown mailbox, invalid LINE user id, a 4xx webhook answer)."""


@dataclass(frozen=True)
class Outgoing:
    """One message ready to go: where, what (rendered for the channel) and its fixed delivery key."""

    message_id: int
    delivery_key: str
    customer_id: int | None
    kind: str  # marketing | service
    address: str
    # Channel-specific rendered content: email {subject, html, text, headers}; line {messages}; webhook {payload}.
    rendered: dict[str, Any]
    attempt: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Connection(Protocol):
    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        """Send one message; return details of the acceptance (kept on the message event), or raise."""
        ...


class Channel(Protocol):
    name: str

    def addresses(self, session: Session, customer_ids: list[int]) -> dict[int, str]:
        """The address to use for each customer that has one (email, LINE user id); missing ones are skipped."""
        ...

    def connect(self, session: Session | None = None) -> AbstractContextManager[Connection]:
        """A connection for a batch of sends (opened lazily is fine); closed when the batch ends. Settings stored
        in the database (credentials, endpoints) are read through ``session``: the sender's own database."""
        ...


_CHANNELS: dict[str, Channel] = {}


def register(channel: Channel) -> None:
    _CHANNELS[channel.name] = channel


def get(name: str) -> Channel:
    try:
        return _CHANNELS[name]
    except KeyError:
        raise LookupError(f"no channel named {name!r} is registered (known: {', '.join(sorted(_CHANNELS))})") from None


def all_channels() -> Iterator[Channel]:
    return iter(_CHANNELS.values())
