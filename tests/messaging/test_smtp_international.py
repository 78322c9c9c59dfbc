"""Japanese addresses on the wire: a Japanese domain (例え.jp) goes out in its IDNA form to any server; a local part
that is not ASCII (太郎@) goes out only to a server offering SMTPUTF8, and is refused clearly, once, otherwise."""

from __future__ import annotations

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from kizuna.db import transaction
from kizuna.messaging import settings
from kizuna.messaging.models import Message
from tests.conftest import free_port
from tests.messaging.conftest import (
    ADMIN,
    IDENTITY,
    PUBLIC_URL,
    Sink,
    _Handler,
    consented_customer,
    queue_mail,
    send_all,
)


@pytest.fixture(params=[False, True], ids=["plain-server", "smtputf8-server"])
def server(request, db, configure):  # noqa: ANN001, ANN201
    sink = Sink(host="127.0.0.1", port=free_port())
    controller = Controller(_Handler(sink), hostname=sink.host, port=sink.port, enable_SMTPUTF8=request.param)
    controller.start()
    configure(smtp_url=sink.url, public_url=PUBLIC_URL)
    with transaction(db) as s:
        settings.save(s, actor=ADMIN, channel="email", values=dict(IDENTITY))
    yield sink, request.param
    controller.stop()


def _send(db, address: str, key: str) -> Message:  # noqa: ANN001
    with transaction(db) as s:
        c = consented_customer(s, address)
        assert c.email == address  # stored as written, Unicode domain and all
        queue_mail(s, c.id, key)
    send_all(db)
    with transaction(db) as s:
        return s.scalars(select(Message).where(Message.key == key)).one()


def test_a_japanese_domain_goes_out_in_its_idna_form(db, server):
    sink, _ = server
    message = _send(db, "taro@例え.jp", "idn-1")
    assert message.status == "sent" and message.address == "taro@例え.jp"
    [got] = sink.received
    assert got.to == ["taro@xn--r8jz45g.jp"]
    assert got.mail["To"] == "taro@xn--r8jz45g.jp"


def test_a_japanese_local_part_needs_smtputf8(db, server):
    sink, smtputf8 = server
    message = _send(db, "太郎@example.jp", "utf8-1")
    if smtputf8:
        assert message.status == "sent"
        [got] = sink.received
        assert got.to == ["太郎@example.jp"] and str(got.mail["To"]) == "太郎@example.jp"
    else:
        assert (message.status, message.reason, message.attempts) == ("failed", "smtputf8_unsupported", 1)
        assert "SMTPUTF8" in message.error and "太郎@example.jp" in message.error
        assert sink.received == []
    # The connection is still good for the next mail of the batch.
    assert _send(db, "hanako@example.jp", "after-1").status == "sent"
