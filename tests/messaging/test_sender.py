"""The sender end to end: queued messages go out through a real SMTP server, once, with what the law requires."""

from __future__ import annotations

from sqlalchemy import func, select

from kizuna.db import transaction
from kizuna.messaging.models import Message
from tests.messaging.conftest import consented_customer, queue_mail, send_all


def messages(engine) -> dict[str, Message]:  # noqa: ANN001
    with transaction(engine) as s:
        return {m.key: m for m in s.scalars(select(Message))}


def test_a_consented_customer_gets_the_mail_with_footer_and_one_click_unsubscribe(db, mail_ready):
    with transaction(db) as s:
        c = consented_customer(s, "hanako@example.jp", given_name="花子")
        queue_mail(s, c.id, "m1")
    assert send_all(db) == 1
    [got] = mail_ready.received
    m = messages(db)["m1"]
    assert m.status == "sent" and m.address == "hanako@example.jp" and m.sent_at is not None
    assert got.to == ["hanako@example.jp"]
    assert got.message_id == f"<{m.delivery_key}@shop.example.com>"
    assert str(got.mail["Subject"]) == "花子さん、新商品のお知らせ"
    assert got.mail["List-Unsubscribe"].startswith("<https://crm.example.com/u/")
    assert got.mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = got.part("plain"), got.part("html")
    for part in (text, html):
        assert "絆ストア" in part and "東京都千代田区丸の内1-1-1" in part and "support@shop.example.com" in part
        assert "配信を停止" in part and "https://crm.example.com/u/" in part
    assert "https://crm.example.com/t/c/" in html and "https://crm.example.com/t/o/" in html


def test_several_connections_hand_over_one_mail_at_a_time_and_record_each_at_once(db, configure):
    """With KIZUNA_SMTP_CONNECTIONS=3 the batch goes over three connections, yet the server never holds two mails
    in DATA at once, and each acceptance is committed before the next mail is handed over (the SIGKILL window
    stays one mail wide)."""
    import asyncio

    from aiosmtpd.controller import Controller

    from kizuna.messaging import settings
    from tests.conftest import free_port
    from tests.messaging.conftest import ADMIN, IDENTITY, PUBLIC_URL, Sink, _Handler

    class Watching(_Handler):
        def __init__(self, sink: Sink) -> None:
            super().__init__(sink)
            self.sessions: set[int] = set()
            self.in_data = 0
            self.most_in_data = 0
            self.unrecorded_seen: list[int] = []

        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
            self.sessions.add(id(session))
            self.in_data += 1
            self.most_in_data = max(self.most_in_data, self.in_data)
            # Every mail accepted before this one is already recorded as sent.
            with transaction(db) as s:
                sent = s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
            self.unrecorded_seen.append(len(self.sink.received) - sent)
            await asyncio.sleep(0.005)
            self.in_data -= 1
            return await super().handle_DATA(server, session, envelope)

    sink = Sink(host="127.0.0.1", port=free_port())
    handler = Watching(sink)
    controller = Controller(handler, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        configure(smtp_url=sink.url, public_url=PUBLIC_URL, smtp_connections=3)
        with transaction(db) as s:
            settings.save(s, actor=ADMIN, channel="email", values=dict(IDENTITY))
            for n in range(30):
                c = consented_customer(s, f"lane{n}@example.jp")
                queue_mail(s, c.id, f"lane{n}")
        assert send_all(db) == 30
    finally:
        controller.stop()
    assert len(sink.by_message_id()) == 30 and set(sink.by_message_id().values()) == {1}
    assert {m.status for m in messages(db).values()} == {"sent"}
    assert len(handler.sessions) == 3
    assert handler.most_in_data == 1
    assert set(handler.unrecorded_seen) == {0}
