"""E-mail in and out of the desk with real mail: ISO-2022-JP, Shift_JIS, HTML-only and broken mail posted as raw
bytes; a real SMTP server (aiosmtpd) that relays what it receives to the running endpoint; replies sent through
the sender to a real SMTP sink and answered back into the same thread."""

from __future__ import annotations

import base64
import smtplib
from email.header import Header
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from kizuna.inquiries import email_in
from kizuna.inquiries.models import Inquiry, InquiryMessage
from tests.conftest import free_port, make_token
from tests.inquiries.conftest import send_all


def post_mail(client, raw: bytes):  # noqa: ANN001, ANN201
    return client.post("/api/v1/inquiries/email", content=raw, headers={"Content-Type": "message/rfc822"})


def iso2022jp_mail(
    subject: str, body: str, *, sender: str = "yamada@example.jp", msgid: str = "<a1@example.jp>"
) -> bytes:
    head = (
        f"From: {Header('山田 花子', 'iso-2022-jp').encode()} <{sender}>\r\n"
        f"To: support@shop.example.com\r\nSubject: {Header(subject, 'iso-2022-jp').encode()}\r\n"
        f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="ISO-2022-JP"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
    )
    return head.encode("ascii") + body.replace("\n", "\r\n").encode("iso2022_jp") + b"\r\n"


def sjis_mail(subject: str, body: str, *, msgid: str = "<s1@example.jp>") -> bytes:
    # Shift_JIS as Japanese mailers write it: labelled shift_jis, encoded by Windows (CP932, with ① and ～).
    words = base64.b64encode(subject.encode("cp932")).decode()
    head = (
        f"From: sato@example.jp\r\nTo: support@shop.example.com\r\nSubject: =?shift_jis?B?{words}?=\r\n"
        f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + body.encode("cp932") + b"\r\n"


def test_iso_2022_jp_mail_opens_a_ticket_with_its_japanese_subject_and_body(client, session):
    raw = iso2022jp_mail("注文の確認", "注文番号１２３の件です。\nよろしくお願いします。")
    assert b"\x1b$B" in raw  # really ISO-2022-JP on the wire
    r = post_mail(client, raw)
    assert r.status_code == 200 and r.json()["created"] is True, r.text
    inquiry = session.get(Inquiry, r.json()["inquiry_id"])
    assert inquiry.subject == "注文の確認" and inquiry.channel == "email" and inquiry.reply_to == "yamada@example.jp"
    message = session.get(InquiryMessage, r.json()["message_id"])
    assert message.body == "注文番号１２３の件です。\nよろしくお願いします。"
    assert message.email_message_id == "<a1@example.jp>" and message.raw.startswith("From:")


def test_shift_jis_mail_with_windows_characters_is_decoded_as_cp932(client, session):
    raw = sjis_mail("①の商品～髙橋", "①番の商品について、髙橋です～")
    with pytest.raises(UnicodeDecodeError):
        raw.split(b"\r\n\r\n", 1)[1].decode("shift_jis")  # the strict codec fails on these characters
    r = post_mail(client, raw)
    assert r.status_code == 200, r.text
    inquiry = session.get(Inquiry, r.json()["inquiry_id"])
    assert inquiry.subject == "①の商品～髙橋"
    assert session.get(InquiryMessage, r.json()["message_id"]).body == "①番の商品について、髙橋です～"


def test_html_only_mail_becomes_text(client, session):
    mail = EmailMessage()
    mail["From"] = "html@example.jp"
    mail["Subject"] = "HTMLのみ"
    mail["Message-ID"] = "<h1@example.jp>"
    mail.set_content(
        "<html><body><p>こんにちは</p><p>返品の<b>相談</b>です</p><script>x()</script></body></html>", subtype="html"
    )
    r = post_mail(client, mail.as_bytes())
    body = session.get(InquiryMessage, r.json()["message_id"]).body
    assert "こんにちは" in body and "返品の相談です" in body and "<" not in body and "x()" not in body


def test_broken_encoding_is_read_safely_and_the_raw_mail_is_kept_whole(client, session):
    # Declared UTF-8 but written in CP932: read as CP932 and the mismatch noted.
    mislabelled = (
        b"From: a@example.jp\r\nSubject: test\r\nMessage-ID: <b1@example.jp>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "請求書の件".encode("cp932") + b"\r\n"
    )
    r = post_mail(client, mislabelled)
    message = session.get(InquiryMessage, r.json()["message_id"])
    assert message.body == "請求書の件" and "read as" in " ".join(message.details["problems"])
    # Bytes no charset can read, under an unknown charset label: replaced, never dropped, and the raw kept.
    garbage = (
        b"From: b@example.jp\r\nSubject: =?x-unknown?B?gYKDhA==?=\r\nMessage-ID: <b2@example.jp>\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\nabc \xff\xfe\x80\x81 def\r\n"
    )
    r = post_mail(client, garbage)
    assert r.status_code == 200, r.text
    message = session.get(InquiryMessage, r.json()["message_id"])
    assert "abc" in message.body and "def" in message.body and message.details["problems"]
    assert message.raw.startswith("base64:") and base64.b64decode(message.raw[7:]) == garbage


def test_a_mail_delivered_twice_is_threaded_once(client, session):
    raw = iso2022jp_mail("二重配送", "同じメール")
    first = post_mail(client, raw).json()
    again = post_mail(client, raw).json()
    assert again["duplicate"] is True and again["message_id"] == first["message_id"]
    assert session.scalar(select(func.count()).select_from(InquiryMessage)) == 1


def test_mail_without_a_sender_or_body_is_refused_and_nothing_is_written(client, session):
    r = post_mail(client, b"Subject: nobody\r\n\r\nhello\r\n")
    assert r.status_code == 422 and "From" in r.text
    assert post_mail(client, b"").status_code == 422
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 0


def test_e_mail_in_needs_a_token_that_may_open_inquiries(app, client_as):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:
        assert post_mail(anonymous, iso2022jp_mail("x", "y")).status_code == 401
    assert post_mail(client_as("viewer"), iso2022jp_mail("x", "y")).status_code == 403


class _Relay:
    """A mail server's delivery to Kizuna: every mail accepted over SMTP is posted raw to the endpoint."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token, self.answers = url, token, []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{self.url}/api/v1/inquiries/email",
                content=envelope.original_content or envelope.content,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "message/rfc822"},
            )
        self.answers.append(r.status_code)
        return "250 OK" if r.status_code == 200 else f"451 4.3.0 Kizuna answered {r.status_code}"


def test_real_smtp_to_endpoint_and_a_reply_by_mail_comes_back_into_the_same_thread(
    app, live_server, session, mail_ready, client
):  # noqa: ANN001
    token = make_token(app.state.engine, "relay@example.com", "support")
    relay = _Relay(live_server, token)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail(
                "yamada@example.jp", ["support@shop.example.com"], iso2022jp_mail("届きません", "まだ届きません")
            )
        assert relay.answers == [200]
        inquiry = session.scalars(select(Inquiry)).one()
        assert inquiry.subject == "届きません"

        # The agent answers; the sender delivers it to the real SMTP sink.
        r = client.post(f"/api/v1/inquiries/{inquiry.id}/messages", json={"body": "確認いたします。\n{{ 壊れない }}"})
        assert r.status_code == 201, r.text
        ours = r.json()["email_message_id"]
        send_all(app.state.engine)
        [sent] = mail_ready.to("yamada@example.jp")
        assert sent.message_id == ours
        assert sent.mail["Subject"] == f"[#KZ-{inquiry.id}] Re: 届きません"
        assert sent.mail["In-Reply-To"] == "<a1@example.jp>"
        assert "確認いたします。\n{{ 壊れない }}" in sent.part("plain")

        # The customer answers: their client keeps In-Reply-To but drops the reference from the subject.
        answer = iso2022jp_mail("Re: 届きません", "ありがとうございます", msgid="<a2@example.jp>")
        answer = answer.replace(b"MIME-Version", f"In-Reply-To: {ours}\r\nMIME-Version".encode(), 1)
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("yamada@example.jp", ["support@shop.example.com"], answer)
        # Another client keeps only the reference in the subject.
        only_ref = iso2022jp_mail(f"Re: [#KZ-{inquiry.id}] 届きません", "追伸です", msgid="<a3@example.jp>")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("yamada@example.jp", ["support@shop.example.com"], only_ref)
    finally:
        controller.stop()
    assert relay.answers == [200, 200, 200]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Inquiry)) == 1
    bodies = list(
        session.scalars(
            select(InquiryMessage.body).where(InquiryMessage.inquiry_id == inquiry.id).order_by(InquiryMessage.id)
        )
    )
    assert bodies == ["まだ届きません", "確認いたします。\n{{ 壊れない }}", "ありがとうございます", "追伸です"]
    assert session.get(Inquiry, inquiry.id).status == "open"  # the customer wrote: back with the agent


def test_a_strangers_mail_naming_a_ticket_reference_opens_its_own_ticket(client, session):
    first = post_mail(client, iso2022jp_mail("注文の確認", "お願いします")).json()
    stranger = iso2022jp_mail(
        f"Re: [#KZ-{first['inquiry_id']}] 注文の確認", "割り込み", sender="x@evil.example", msgid="<e1@evil>"
    )
    r = post_mail(client, stranger).json()
    assert r["inquiry_id"] != first["inquiry_id"] and r["created"] is True
    own = iso2022jp_mail(f"Re: [#KZ-{first['inquiry_id']}] 注文の確認", "追記", msgid="<a9@example.jp>")
    assert post_mail(client, own).json()["inquiry_id"] == first["inquiry_id"]


def test_parse_names_problems_without_raising_on_a_malformed_mime_tree():
    raw = b"From: x@example.jp\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nbroken"
    parsed = email_in.parse(raw)
    assert parsed.from_address == "x@example.jp" and isinstance(parsed.text, str)


def test_a_large_mail_with_an_attachment_is_accepted_up_to_the_mail_limit(client, session):
    mail = EmailMessage()
    mail["From"] = "big@example.jp"
    mail["Subject"] = "写真を添付します"
    mail["Message-ID"] = "<big1@example.jp>"
    mail.set_content("破損した商品の写真です。")
    mail.add_attachment(bytes(range(256)) * 24_000, maintype="image", subtype="jpeg", filename="photo.jpg")
    raw = mail.as_bytes()
    assert len(raw) > 6_000_000  # over the JSON body limit (5 MB), under the mail limit (10 MB)
    r = post_mail(client, raw)
    assert r.status_code == 200, r.text[:300]
    message = session.get(InquiryMessage, r.json()["message_id"])
    assert message.body == "破損した商品の写真です。" and message.raw.encode() == raw  # kept whole
