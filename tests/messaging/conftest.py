"""A real SMTP server (aiosmtpd) that parses every mail it accepts, and the settings a sender needs."""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.db import transaction
from tests.conftest import free_port
from tests.web.conftest import make_user, ui_client  # noqa: F401 - the UI's signed-in clients, for the pages' tests

ADMIN = Actor.system("test")
PUBLIC_URL = "https://crm.example.com"
IDENTITY = {
    "from_name": "絆ストア",
    "from_address": "news@shop.example.com",
    "postal_address": "東京都千代田区丸の内1-1-1",
    "complaints_contact": "support@shop.example.com",
}


@dataclass
class Received:
    envelope_from: str
    to: list[str]
    raw: bytes
    mail: email.message.EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.mail["Message-ID"])

    def part(self, subtype: str) -> str:
        body = self.mail.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""


@dataclass
class Sink:
    """Accepts mail, or answers with ``refuse`` (e.g. ``"451 4.3.0 try later"``) while it is set."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    refuse: str | None = None
    refused: int = 0
    # Recipients answered with a code of their own at RCPT (e.g. {"gone@x": "550 5.1.1 no such user"}).
    rcpt_answers: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def by_message_id(self) -> Counter[str]:
        with self.lock:
            return Counter(r.message_id for r in self.received)

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.to]


class _Handler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        answer = self.sink.rcpt_answers.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.sink.refuse:
            self.sink.refused += 1
            return self.sink.refuse
        raw = envelope.original_content or envelope.content
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        with self.sink.lock:
            self.sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), raw, mail))
        return "250 2.0.0 OK"


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    sink = Sink(host="127.0.0.1", port=free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set KIZUNA_* settings for the test (the settings object is rebuilt), restored afterwards."""
    from kizuna.config import get_settings

    def set_(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"KIZUNA_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def mail_ready(db: Engine, smtp_sink: Sink, configure: Callable[..., None]) -> Sink:
    """SMTP pointing at the sink, the public URL set and a complete sender identity saved."""
    from kizuna.messaging import settings

    configure(smtp_url=smtp_sink.url, public_url=PUBLIC_URL, send_retry_seconds=1)
    with transaction(db) as s:
        settings.save(s, actor=ADMIN, channel="email", values=dict(IDENTITY))
    return smtp_sink


def send_all(engine: Engine, *, worker: str = "test-worker", rounds: int = 50) -> int:
    """Run the sender until nothing is due; how many messages it handled."""
    from kizuna.messaging.sender import send_due

    total = 0
    for _ in range(rounds):
        handled = send_due(engine, worker=worker)
        if not handled:
            break
        total += handled
    return total


CONTENT = {
    "subject": "{{ customer.given_name | default('お客様') }}さん、新商品のお知らせ",
    "html": '<html><body><p>{{ customer.family_name }}様</p><p><a href="https://shop.example.com/new?a=1&amp;b=2">新商品</a></p></body></html>',
}


def queue_mail(session: Any, customer_id: int | None, key: str, *, kind: str = "marketing", **fields: Any) -> Any:
    """Queue one email (inline content unless a template or content is given)."""
    from kizuna.messaging.queue import NewMessage, queue

    fields.setdefault("content", dict(CONTENT) if "template_id" not in fields else {})
    return queue(session, NewMessage(key=key, customer_id=customer_id, channel="email", kind=kind, **fields))


def consented_customer(session: Any, email_address: str, **fields: Any) -> Any:
    from tests import factories

    customer = factories.customer(session, email=email_address, **fields)
    factories.consent(session, customer_id=customer.id, channel="email")
    return customer


# Real local HTTP servers standing in for LINE and webhook receivers.
from tests.messaging.http_fakes import fake_line, line_env, receiver, receiver6, settings_env  # noqa: E402, F401
