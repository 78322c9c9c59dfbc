"""Auto-replies and bounces into the desk's e-mail endpoint, as real mail bytes: an ISO-2022-JP out-of-office, RFC
3834 and vendor headers, a Postfix delivery status notification for a reply that really went out through SMTP.
None of them opens a ticket, creates a customer, reopens a pending ticket or counts as the customer's answer; one
that belongs to a ticket is kept on it as a system entry, a bounce marks the reply and suppresses the address."""

from __future__ import annotations

import smtplib
from email.header import Header
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.customers.models import Customer
from kizuna.inquiries import automail, email_in
from kizuna.inquiries.models import Inquiry, InquiryEvent, InquiryMessage
from kizuna.messaging import service as messaging
from kizuna.messaging.models import MessageEvent
from kizuna.outbox.models import OutboxMessage
from tests.conftest import free_port, make_token
from tests.inquiries.conftest import send_all
from tests.inquiries.test_email import _Relay, iso2022jp_mail, post_mail


def count(session, model) -> int:  # noqa: ANN001
    return session.scalar(select(func.count()).select_from(model)) or 0


def out_of_office_jp(*, in_reply_to: str = "", msgid: str = "<oof1@example.jp>", headers: str = "") -> bytes:
    """An out-of-office as a Japanese mailer writes it: ISO-2022-JP, RFC 3834's Auto-Submitted unless replaced."""
    head = (
        f"From: {Header('山田 花子', 'iso-2022-jp').encode()} <yamada@example.jp>\r\n"
        f"To: support@shop.example.com\r\nSubject: {Header('不在のお知らせ', 'iso-2022-jp').encode()}\r\n"
        f"Message-ID: {msgid}\r\n"
        + (f"In-Reply-To: {in_reply_to}\r\n" if in_reply_to else "")
        + (headers or "Auto-Submitted: auto-replied\r\n")
        + 'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="ISO-2022-JP"\r\n'
        + "Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    body = "ただいま不在にしております。\n12月1日以降に順次ご返信いたします。"
    return head.encode("ascii") + body.replace("\n", "\r\n").encode("iso2022_jp") + b"\r\n"


def postfix_dsn(original_id: str, *, recipient: str = "yamada@example.jp", action: str = "failed",
                status: str = "5.1.1", msgid: str = "<20261128.dsn1@mail.shop.example.com>") -> bytes:  # fmt: skip
    """A delivery status notification as Postfix sends it (RFC 3464), returning the failed mail's headers."""
    diagnostic = (
        f"550 5.1.1 <{recipient}>: Recipient address rejected: User unknown in virtual mailbox table"
        if status.startswith("5")
        else "451 4.4.1 Connection timed out"
    )
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mail.shop.example.com (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "To: support@shop.example.com\r\n"
        "Auto-Submitted: auto-replied\r\n"
        f"Message-Id: {msgid}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="7E9F81C0A2.1764300000/mail"\r\n'
        "\r\n"
        "This is a MIME-encapsulated message.\r\n\r\n"
        "--7E9F81C0A2.1764300000/mail\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mail.shop.example.com.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        f"<{recipient}>: host mx.example.jp[192.0.2.25] said: {diagnostic} (in reply to RCPT TO command)\r\n\r\n"
        "--7E9F81C0A2.1764300000/mail\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mail.shop.example.com\r\n"
        "X-Postfix-Queue-ID: 7E9F81C0A2\r\n"
        "X-Postfix-Sender: rfc822; support@shop.example.com\r\n"
        "Arrival-Date: Sat, 28 Nov 2026 15:20:00 +0900 (JST)\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.example.jp\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        "--7E9F81C0A2.1764300000/mail\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        "Return-Path: <support@shop.example.com>\r\n"
        "Received: by mail.shop.example.com (Postfix, from userid 0) id 7E9F81C0A2; Sat, 28 Nov 2026 15:20:00 +0900\r\n"
        "From: support@shop.example.com\r\n"
        f"To: {recipient}\r\n"
        "Subject: =?utf-8?b?UmU6IOWxiuOBjeOBvuOBm+OCkw==?=\r\n"
        f"Message-ID: {original_id}\r\n\r\n"
        "--7E9F81C0A2.1764300000/mail--\r\n"
    ).encode("ascii")


@pytest.fixture
def answered(client, session, mail_ready):  # noqa: ANN001, ANN201
    """A customer's mail, the agent's reply really sent through SMTP: (inquiry id, the reply's Message-ID)."""
    opened = post_mail(client, iso2022jp_mail("届きません", "まだ届きません")).json()
    r = client.post(f"/api/v1/inquiries/{opened['inquiry_id']}/messages", json={"body": "確認いたします。"})
    assert r.status_code == 201, r.text
    send_all(client.app.state.engine)
    [sent] = mail_ready.to("yamada@example.jp")
    assert sent.message_id == r.json()["email_message_id"]
    return opened["inquiry_id"], sent.message_id


def test_a_japanese_out_of_office_is_kept_on_the_ticket_and_changes_nothing_else(client, session, answered):
    inquiry_id, ours = answered
    before = session.get(Inquiry, inquiry_id)
    state = (before.status, before.sla_paused_at, before.last_customer_message_at, before.version)
    events, outbox = count(session, InquiryEvent), count(session, OutboxMessage)
    raw = out_of_office_jp(in_reply_to=ours)
    assert b"\x1b$B" in raw
    r = post_mail(client, raw)
    assert r.status_code == 200, r.text
    assert r.json() == {**r.json(), "inquiry_id": inquiry_id, "created": False, "automatic": "auto_reply"}
    session.expire_all()
    after = session.get(Inquiry, inquiry_id)
    assert state == ("pending", after.sla_paused_at, after.last_customer_message_at, after.version)
    assert after.status == "pending" and after.sla_paused_at is not None  # still waiting, clock still stopped
    assert (count(session, InquiryEvent), count(session, OutboxMessage)) == (events, outbox)  # no "received"
    entry = session.get(InquiryMessage, r.json()["message_id"])
    assert entry.direction == "note" and entry.details["auto"] == "auto_reply"
    assert "Auto-Submitted: auto-replied" in entry.details["reason"] and "12月1日以降" in entry.body
    assert session.scalar(select(func.count()).select_from(Customer)) == 1
    # Delivered twice: recorded once.
    assert post_mail(client, raw).json()["duplicate"] is True
    action = session.scalars(select(AuditEntry.action).where(AuditEntry.action == "inquiry.auto_mail")).all()
    assert action == ["inquiry.auto_mail"]


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_the_ticket_page_shows_the_auto_reply_and_the_bounce_as_system_entries(client, ui_client, answered, lang):
    inquiry_id, ours = answered
    post_mail(client, out_of_office_jp(in_reply_to=ours)).raise_for_status()
    post_mail(client, postfix_dsn(ours)).raise_for_status()
    c = ui_client("support")
    c.cookies.set("kizuna_lang", lang)
    page = c.get(f"/inquiries/{inquiry_id}").text
    assert page.count('data-testid="auto-entry"') == 2
    assert ("自動返信を受信" if lang == "ja" else "Auto-reply received") in page
    assert ("返信が届きませんでした" if lang == "ja" else "Reply bounced") in page and "550 5.1.1" in page
    assert 'data-testid="bounced"' in page  # the agent's reply is marked
    assert ("SLA停止中" if lang == "ja" else "SLA paused") in page


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-generated\r\n",
        "X-Autoreply: yes\r\n",
        "X-Autorespond: Out of office\r\n",
        "Precedence: bulk\r\n",
        "Precedence: auto_reply\r\n",
        "Precedence: junk\r\n",
        "Precedence: list\r\n",
    ],
)
def test_automatic_mail_matching_no_ticket_opens_nothing_and_is_audited(client, session, headers):
    r = post_mail(client, out_of_office_jp(headers=headers))
    assert r.status_code == 200, r.text
    assert r.json()["ignored"] is True and r.json()["inquiry_id"] is None and r.json()["automatic"] == "auto_reply"
    assert count(session, Inquiry) == 0 and count(session, Customer) == 0
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "inquiry.mail_ignored")).all()
    assert "yamada@example.jp" in entry.summary and entry.details["reason"].split(":")[0] in headers


def test_an_auto_reply_from_the_customer_is_no_repeat_and_does_not_reopen_by_reference(client, session):
    opened = post_mail(client, iso2022jp_mail("注文の確認", "お願いします")).json()
    session.execute(Inquiry.__table__.update().values(status="resolved"))
    session.commit()
    # Within the repeat window, from the customer's own address: not appended as a repeat, so ignored.
    assert post_mail(client, out_of_office_jp(headers="X-Autoreply: yes\r\n")).json()["ignored"] is True
    # Naming the ticket in its subject (an auto-reply quoting our subject): kept, but the ticket stays resolved.
    quoting = out_of_office_jp(msgid="<oof2@example.jp>").replace(
        b"Subject: ", f"Subject: Re: [#KZ-{opened['inquiry_id']}] ".encode(), 1
    )
    r = post_mail(client, quoting).json()
    assert r["inquiry_id"] == opened["inquiry_id"] and r["automatic"] == "auto_reply"
    session.expire_all()
    assert session.get(Inquiry, opened["inquiry_id"]).status == "resolved"
    assert count(session, Inquiry) == 1


@pytest.mark.parametrize("subject", ["不在のお知らせ", "Out of Office: 届きません", "自動返信: 留守にしています"])
def test_an_out_of_office_subject_alone_is_a_person_writing(client, session, subject):
    r = post_mail(client, iso2022jp_mail(subject, "休暇から戻りました。注文の件です。")).json()
    assert r["created"] is True and r["automatic"] is None
    # "Auto-Submitted: no" is RFC 3834's "a person sent this".
    person = out_of_office_jp(headers="Auto-Submitted: no\r\n", msgid="<no1@example.jp>")
    assert post_mail(client, person).json()["automatic"] is None


def test_a_bounce_through_smtp_marks_the_reply_and_suppresses_the_address(app, live_server, session, answered):
    inquiry_id, ours = answered
    customers = count(session, Customer)
    relay = _Relay(live_server, make_token(app.state.engine, "relay@example.com", "support"))
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        with smtplib.SMTP("127.0.0.1", controller.port) as smtp:
            smtp.sendmail("", ["support@shop.example.com"], postfix_dsn(ours))  # the null return path
    finally:
        controller.stop()
    assert relay.answers == [200]
    session.expire_all()
    inquiry = session.get(Inquiry, inquiry_id)
    assert inquiry.status == "pending" and count(session, Customer) == customers  # MAILER-DAEMON is nobody
    reply = session.scalars(select(InquiryMessage).where(InquiryMessage.email_message_id == ours)).one()
    assert reply.details["bounced"]["permanent"] is True and "550 5.1.1" in reply.details["bounced"]["summary"]
    entry = session.get(InquiryMessage, reply.details["bounced"]["entry_id"])
    assert entry.details["auto"] == "bounce" and entry.details["summary"].startswith("550 5.1.1 <yamada@example.jp>")
    # The messaging bounce handling saw it: an event on the reply's message, the address suppressed.
    kinds = session.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == reply.outgoing_message_id))
    assert "bounce" in list(kinds)
    assert messaging.suppressed(session, "email", ["yamada@example.jp"]) == {"yamada@example.jp": "hard_bounce"}


def test_a_delayed_delivery_report_is_noted_but_bounces_nothing(client, session, answered):
    inquiry_id, ours = answered
    r = post_mail(client, postfix_dsn(ours, action="delayed", status="4.4.1")).json()
    assert r["inquiry_id"] == inquiry_id and r["automatic"] == "bounce"
    reply = session.scalars(select(InquiryMessage).where(InquiryMessage.email_message_id == ours)).one()
    assert "bounced" not in reply.details and messaging.suppressed(session, "email", ["yamada@example.jp"]) == {}


def test_a_bounce_of_a_mail_we_never_sent_is_ignored_and_suppresses_nothing(client, session):
    r = post_mail(client, postfix_dsn("<not-ours@elsewhere.example>", recipient="victim@example.jp")).json()
    assert r["ignored"] is True and r["automatic"] == "bounce"
    assert count(session, Inquiry) == 0 and count(session, Customer) == 0
    assert messaging.suppressed(session, "email", ["victim@example.jp"]) == {}


def test_classify_reads_the_report_parts():
    import email
    import email.policy

    found = automail.classify(email.message_from_bytes(postfix_dsn("<x@kizuna>"), policy=email.policy.default))
    assert found is not None and found.kind == "bounce" and found.original_ids == ["<x@kizuna>"]
    [delivery] = found.deliveries
    assert (delivery.recipient, delivery.action, delivery.status, delivery.permanent) == (
        "yamada@example.jp", "failed", "5.1.1", True,
    )  # fmt: skip
    plain = EmailMessage()
    plain["From"] = "a@example.jp"
    plain["Subject"] = "Automatic reply: 不在"
    plain.set_content("本人が書きました")
    assert automail.classify(plain) is None
    assert email_in.parse(postfix_dsn("<x@kizuna>")).auto is not None
