"""STARTTLS and implicit TLS to a real SMTP server with its own certificate: verified against the CA the URL
names (``?cafile=``), refused with a clear, retried failure when the certificate cannot be trusted."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
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


def _certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Kizuna test CA"))
        .issuer_name(name("Kizuna test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class _Recording(_Handler):
    """Remembers whether each mail came over TLS."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink)
        self.over_tls: list[bool] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        self.over_tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def tls_server(tmp_path):  # noqa: ANN201
    ca, cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = Sink(host="127.0.0.1", port=free_port())
    handler = _Recording(sink)
    controller = Controller(handler, hostname=sink.host, port=sink.port, tls_context=context, require_starttls=True)
    controller.start()
    yield sink, handler, ca
    controller.stop()


def _one_mail(db, configure, url: str) -> Message:  # noqa: ANN001
    configure(smtp_url=url, public_url=PUBLIC_URL, send_retry_seconds=1)
    with transaction(db) as s:
        settings.save(s, actor=ADMIN, channel="email", values=dict(IDENTITY))
        c = consented_customer(s, "tls@example.jp")
        queue_mail(s, c.id, "tls-1")
    send_all(db, rounds=1)
    with transaction(db) as s:
        return s.scalars(select(Message).where(Message.key == "tls-1")).one()


def test_starttls_to_a_server_whose_ca_the_url_names(db, configure, tls_server):
    sink, handler, ca = tls_server
    message = _one_mail(db, configure, f"smtp://127.0.0.1:{sink.port}?starttls=1&cafile={ca}")
    assert message.status == "sent"
    assert handler.over_tls == [True] and len(sink.received) == 1


def test_an_untrusted_certificate_is_a_clear_retried_failure_and_nothing_is_sent(db, configure, tls_server):
    sink, handler, _ = tls_server
    message = _one_mail(db, configure, f"smtp://127.0.0.1:{sink.port}?starttls=1")
    assert message.status == "queued" and message.reason == "smtp_tls"
    assert "cannot be trusted" in message.error and "cafile" in message.error
    assert sink.received == [] and handler.over_tls == []
