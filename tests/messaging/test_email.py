"""The email channel against real SMTP servers: DKIM, sender identity, SMTP answers and outages."""

from __future__ import annotations

import base64
import time

import dkim
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from kizuna.db import transaction, utcnow
from kizuna.errors import ValidationError
from kizuna.messaging import settings
from kizuna.messaging.models import Message
from kizuna.messaging.schemas import EmailSettingsIn
from kizuna.messaging.smtp import SmtpConfig
from tests.conftest import free_port
from tests.messaging.conftest import ADMIN, IDENTITY, Sink, _Handler, consented_customer, queue_mail, send_all


def by_key(engine) -> dict[str, Message]:  # noqa: ANN001
    with transaction(engine) as s:
        return {m.key: m for m in s.scalars(select(Message))}


def make_due(engine) -> None:  # noqa: ANN001
    """Skip the back-off wait: what a retry after the wait does, without sleeping through it."""
    with transaction(engine) as s:
        s.execute(update(Message).where(Message.status == "queued").values(due_at=utcnow()))


def test_smtp_urls():
    assert SmtpConfig.from_url("smtp://user:p%40ss@mail.example.com:587?starttls=1") == SmtpConfig(
        host="mail.example.com", port=587, security="starttls", username="user", password="p@ss"
    )
    assert SmtpConfig.from_url("smtps://u:p@mail.example.com").port == 465
    assert SmtpConfig.from_url("smtps://u:p@mail.example.com").security == "ssl"
    assert SmtpConfig.from_url("smtp://127.0.0.1:2525") == SmtpConfig(host="127.0.0.1", port=2525)
    with pytest.raises(ValidationError, match="KIZUNA_SMTP_URL"):
        SmtpConfig.from_url("http://mail.example.com")


def test_dkim_signature_verifies_and_covers_both_list_unsubscribe_headers(db, mail_ready):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with transaction(db) as s:
        data = EmailSettingsIn(**IDENTITY, dkim_domain="shop.example.com", dkim_selector="kz1", dkim_private_key=pem)
        settings.save_email(s, actor=ADMIN, data=data)
        # Stored encrypted: the PEM is not in the row, and comes back decrypted.
        row = s.scalars(select(settings.ChannelSettings)).one()
        assert "PRIVATE KEY" not in str(row.secrets) and "PRIVATE KEY" not in str(row.values)
        assert settings.secret(s, "email", "dkim_private_key") == pem.strip()
        c = consented_customer(s, "signed@example.jp")
        queue_mail(s, c.id, "signed")
    send_all(db)
    [got] = mail_ready.received
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    assert dkim.verify(got.raw, dnsfunc=dns)
    assert asked == [b"kz1._domainkey.shop.example.com."]
    tags = dict(
        part.strip().split("=", 1) for part in "".join(str(got.mail["DKIM-Signature"]).split()).split(";") if part
    )
    covered = {h.lower() for h in tags["h"].split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject", "message-id"} <= covered
    assert tags["d"] == "shop.example.com" and tags["s"] == "kz1"
    # Altering a signed header breaks the signature.
    forged = got.raw.replace(b"List-Unsubscribe: <https://crm.example.com", b"List-Unsubscribe: <https://evil.example")
    assert not dkim.verify(forged, dnsfunc=dns)


def test_marketing_mail_is_refused_without_a_sender_identity_and_says_what_is_missing(db, mail_ready):
    with transaction(db) as s:
        settings.save(s, actor=ADMIN, channel="email", values={"from_address": "news@shop.example.com"})
        c = consented_customer(s, "x@example.jp")
        queue_mail(s, c.id, "promo")
        queue_mail(s, c.id, "receipt", kind="service")
    send_all(db)
    got = by_key(db)
    assert (got["promo"].status, got["promo"].reason) == ("failed", "no_sender_identity")
    assert "from_name" in got["promo"].error and "postal_address" in got["promo"].error
    assert "complaints_contact" in got["promo"].error
    assert got["receipt"].status == "sent"  # a service mail needs only a From address
    assert len(mail_ready.received) == 1


def test_marketing_mail_is_refused_without_a_public_url(db, mail_ready, configure):
    configure(public_url="")
    with transaction(db) as s:
        c = consented_customer(s, "x@example.jp")
        queue_mail(s, c.id, "promo")
    send_all(db)
    assert (by_key(db)["promo"].status, by_key(db)["promo"].reason) == ("failed", "no_public_url")
    assert mail_ready.received == []


def test_a_failing_message_does_not_hold_back_the_others(db, mail_ready):
    mail_ready.rcpt_answers["gone@example.jp"] = "550 5.1.1 no such user"
    with transaction(db) as s:
        ok1 = consented_customer(s, "ok1@example.jp")
        gone = consented_customer(s, "gone@example.jp")
        broken = consented_customer(s, "broken@example.jp")
        ok2 = consented_customer(s, "ok2@example.jp")
        queue_mail(s, ok1.id, "ok1")
        queue_mail(s, gone.id, "gone")
        queue_mail(s, broken.id, "broken", content={"subject": "{{ context.order.number }}", "html": "<p>x</p>"})
        queue_mail(s, ok2.id, "ok2")
    send_all(db)
    got = by_key(db)
    assert (got["gone"].status, got["gone"].reason) == ("failed", "smtp_550")
    assert "no such user" in got["gone"].error
    assert (got["broken"].status, got["broken"].reason) == ("failed", "render_error")
    assert "subject" in got["broken"].error and "order" in got["broken"].error
    assert got["ok1"].status == got["ok2"].status == "sent"
    assert sorted(r.to[0] for r in mail_ready.received) == ["ok1@example.jp", "ok2@example.jp"]


def test_smtp_refusing_for_a_while_then_accepting_loses_nothing_and_duplicates_nothing(db, mail_ready):
    mail_ready.refuse = "451 4.3.0 try again later"
    with transaction(db) as s:
        for n in range(12):
            c = consented_customer(s, f"r{n}@example.jp")
            queue_mail(s, c.id, f"m{n}")
    for _ in range(2):
        send_all(db)
        make_due(db)
    got = by_key(db)
    assert {m.status for m in got.values()} == {"queued"}
    assert {m.reason for m in got.values()} == {"smtp_451"} and {m.attempts for m in got.values()} == {2}
    assert mail_ready.received == [] and mail_ready.refused == 24
    mail_ready.refuse = None
    time.sleep(1.1)  # the real back-off (KIZUNA_SEND_RETRY_SECONDS=1, doubled: 2 s) runs out before the retry
    make_due(db)
    send_all(db)
    got = by_key(db)
    assert {m.status for m in got.values()} == {"sent"}
    counts = mail_ready.by_message_id()
    assert len(counts) == 12 and set(counts.values()) == {1}


def test_an_unreachable_server_keeps_messages_queued_and_tries_once_per_batch(db, mail_ready, configure):
    configure(smtp_url=f"smtp://127.0.0.1:{free_port()}")  # nobody listens there
    with transaction(db) as s:
        for n in range(5):
            c = consented_customer(s, f"u{n}@example.jp")
            queue_mail(s, c.id, f"m{n}")
    started = time.monotonic()
    send_all(db)
    assert time.monotonic() - started < 5
    got = by_key(db)
    assert {(m.status, m.reason) for m in got.values()} == {("queued", "smtp_unreachable")}
    assert all("cannot reach the SMTP server" in m.error for m in got.values())
    configure(smtp_url=mail_ready.url)
    make_due(db)
    send_all(db)
    assert {m.status for m in by_key(db).values()} == {"sent"}
    assert len(mail_ready.received) == 5


def test_attempts_used_up_end_in_a_visible_failure(db, mail_ready, configure):
    configure(send_max_attempts=2)
    mail_ready.refuse = "452 4.2.2 mailbox full"
    with transaction(db) as s:
        c = consented_customer(s, "full@example.jp")
        queue_mail(s, c.id, "m")
    for _ in range(3):
        send_all(db)
        make_due(db)
    m = by_key(db)["m"]
    assert (m.status, m.reason, m.attempts) == ("failed", "smtp_452", 2)
    assert m.error.startswith("gave up after 2 attempts: ") and "mailbox full" in m.error


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login(db, mail_ready, configure):
    sink = Sink(host="127.0.0.1", port=free_port())

    def authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
        if auth_data.login == b"kizuna" and auth_data.password == b"s3cret":
            return AuthResult(success=True, handled=False)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")

    controller = Controller(
        _Handler(sink), hostname=sink.host, port=sink.port, authenticator=authenticate, auth_require_tls=False,
        auth_required=True,
    )  # fmt: skip
    controller.start()
    try:
        configure(smtp_url=f"smtp://kizuna:wrong@{sink.host}:{sink.port}")
        with transaction(db) as s:
            c = consented_customer(s, "auth@example.jp")
            queue_mail(s, c.id, "m")
        send_all(db)
        m = by_key(db)["m"]
        assert (m.status, m.reason) == ("queued", "smtp_login"), m.error
        configure(smtp_url=f"smtp://kizuna:s3cret@{sink.host}:{sink.port}")
        make_due(db)
        send_all(db)
        assert by_key(db)["m"].status == "sent" and len(sink.received) == 1
    finally:
        controller.stop()


def test_a_malformed_smtp_url_is_a_recorded_temporary_failure(db, mail_ready, configure):
    configure(smtp_url="smtp:/nohost")
    with transaction(db) as s:
        c = consented_customer(s, "x@example.jp")
        queue_mail(s, c.id, "m")
    send_all(db)
    m = by_key(db)["m"]
    assert (m.status, m.reason) == ("queued", "smtp_config") and "KIZUNA_SMTP_URL" in m.error
