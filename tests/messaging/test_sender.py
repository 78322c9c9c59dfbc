"""The sender end to end: queued messages go out through a real SMTP server, once, with what the law requires."""

from __future__ import annotations

from sqlalchemy import select

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
