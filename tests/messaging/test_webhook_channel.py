"""The webhook channel against real local receivers: signature, idempotency key, answers, timeouts."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from kizuna.messaging import channels
from kizuna.messaging.channels import Outgoing, PermanentFailure, TemporaryFailure
from kizuna.messaging.queue import new_delivery_key
from kizuna.messaging.webhook import CHANNEL, sign, url_secret, verify
from kizuna.messaging.webhook_admin import add_allowed, create_endpoint, update_endpoint
from kizuna.messaging.webhook_models import WebhookEndpoint

PAYLOAD = {"event": "order.completed", "customer": {"id": 42, "name": "山田 太郎"}, "total": 3980}


def receiver_verifies(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """What a receiver in another language would write, from the documented scheme alone."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = fields["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return abs(time.time() - int(fields["t"])) <= tolerance and hmac.compare_digest(expected, fields["v1"])


def outgoing(rendered: dict, *, key: str | None = None, attempt: int = 1, customer_id: int = 42) -> Outgoing:
    return Outgoing(
        message_id=7,
        delivery_key=key or new_delivery_key(),
        customer_id=customer_id,
        kind="service",
        address="webhook",
        rendered=rendered,
        attempt=attempt,
    )


@pytest.fixture
def allow_loopback(settings_env):  # noqa: ANN001, ANN201
    settings_env(webhook_allow="127.0.0.1,::1")


def test_the_webhook_channel_is_registered_by_importing_its_module():
    assert channels.get("webhook") is CHANNEL


def test_a_signed_post_with_the_delivery_key_reaches_an_endpoint(session, admin, receiver, allow_loopback):
    endpoint, secret = create_endpoint(session, actor=admin, name="crm-sync", url=receiver.url("/in?src=kizuna"))
    session.commit()
    message = outgoing({"endpoint": "crm-sync", "payload": PAYLOAD})
    with CHANNEL.connect(session) as conn:
        result = conn.send(message)
    assert result == {"status": 200, "url": endpoint.url, "address": "127.0.0.1", "endpoint": "crm-sync"}
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/in?src=kizuna"
    assert json.loads(request.body) == PAYLOAD
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["idempotency-key"] == message.delivery_key
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert receiver_verifies(secret, request.body, request.headers["x-kizuna-signature"])
    assert verify(secret, request.body, request.headers["x-kizuna-signature"])
    # Another secret, another body or an old timestamp fail.
    assert not receiver_verifies("whsec_other", request.body, request.headers["x-kizuna-signature"])
    assert not receiver_verifies(secret, request.body + b" ", request.headers["x-kizuna-signature"])
    stale = sign(secret, request.body, timestamp=int(time.time()) - 3600)
    assert not receiver_verifies(secret, request.body, stale) and not verify(secret, request.body, stale)


def test_the_secret_is_stored_encrypted(session, admin, receiver, allow_loopback):
    endpoint, secret = create_endpoint(session, actor=admin, name="crm", url=receiver.url())
    session.commit()
    stored = session.get(WebhookEndpoint, endpoint.id).secret
    assert secret not in stored and secret.startswith("whsec_")


def test_a_url_without_an_endpoint_is_signed_with_a_key_derived_for_it(session, receiver, allow_loopback, client):
    url = receiver.url("/raw")
    with CHANNEL.connect(session) as conn:
        conn.send(outgoing({"url": url, "payload": PAYLOAD}))
    (request,) = receiver.requests
    shown = client.post("/api/v1/webhooks/url-secret", json={"url": url}).json()["secret"]
    assert shown == url_secret(url) != url_secret(receiver.url("/other"))
    assert receiver_verifies(shown, request.body, request.headers["x-kizuna-signature"])


def test_without_a_payload_the_message_is_identified(session, receiver, allow_loopback):
    message = outgoing({"url": receiver.url()})
    with CHANNEL.connect(session) as conn:
        conn.send(message)
    assert json.loads(receiver.requests[0].body) == {
        "message_id": 7,
        "customer_id": 42,
        "kind": "service",
        "delivery_key": message.delivery_key,
    }


@pytest.mark.parametrize(
    ("status", "failure", "reason"),
    [
        (500, TemporaryFailure, "http_500"),
        (503, TemporaryFailure, "http_503"),
        (429, TemporaryFailure, "http_429"),
        (408, TemporaryFailure, "http_408"),
        (400, PermanentFailure, "http_400"),
        (404, PermanentFailure, "http_404"),
        (410, PermanentFailure, "http_410"),
    ],
)
def test_receiver_answers_are_classified(session, receiver, allow_loopback, status, failure, reason):
    receiver.answers.append((status, {}))
    with CHANNEL.connect(session) as conn, pytest.raises(failure) as failed:
        conn.send(outgoing({"url": receiver.url(), "payload": PAYLOAD}))
    assert failed.value.reason == reason and str(status) in str(failed.value)


def test_a_retry_carries_the_same_idempotency_key(session, receiver, allow_loopback):
    receiver.answers.append((502, {}))
    key = new_delivery_key()
    with CHANNEL.connect(session) as conn:
        with pytest.raises(TemporaryFailure):
            conn.send(outgoing({"url": receiver.url(), "payload": PAYLOAD}, key=key))
        assert conn.send(outgoing({"url": receiver.url(), "payload": PAYLOAD}, key=key, attempt=2))["status"] == 200
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [key, key]


def test_a_redirect_is_not_followed(session, receiver, allow_loopback):
    receiver.answers.append((302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as failed:
        conn.send(outgoing({"url": receiver.url(), "payload": PAYLOAD}))
    assert failed.value.reason == "redirect" and "169.254.169.254" in str(failed.value)
    assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out_and_is_retried_later(session, receiver, allow_loopback, settings_env):
    settings_env(webhook_read_timeout_seconds=0.3, webhook_allow="127.0.0.1")
    receiver.delay = 2.0
    started = time.monotonic()
    with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure) as failed:
        conn.send(outgoing({"url": receiver.url(), "payload": PAYLOAD}))
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_a_receiver_that_is_down_is_retried_later(session, allow_loopback):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure) as failed:
        conn.send(outgoing({"url": f"http://127.0.0.1:{port}/hook", "payload": PAYLOAD}))
    assert failed.value.reason == "unreachable"


def test_unknown_or_paused_endpoints_fail_for_good(session, admin, receiver, allow_loopback):
    endpoint, _ = create_endpoint(session, actor=admin, name="paused", url=receiver.url())
    update_endpoint(session, actor=admin, endpoint_id=endpoint.id, active=False)
    session.commit()
    for name in ("paused", "missing"):
        with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as failed:
            conn.send(outgoing({"endpoint": name, "payload": PAYLOAD}))
        assert failed.value.reason == "unknown_endpoint"
    assert receiver.requests == []


def test_the_allow_list_page_entries_count_as_much_as_the_setting(session, admin, receiver):
    url = receiver.url()
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as refused:
        conn.send(outgoing({"url": url, "payload": PAYLOAD}))
    assert refused.value.reason == "address_refused"
    add_allowed(session, actor=admin, entry="127.0.0.0/8", note="test receiver")
    session.commit()
    with CHANNEL.connect(session) as conn:
        assert conn.send(outgoing({"url": url, "payload": PAYLOAD}))["status"] == 200
    assert len(receiver.requests) == 1


def _certificates(tmp_path, name: str):  # noqa: ANN001, ANN202
    """A CA and a server certificate for ``name`` signed by it (files: ca.pem, server.pem, server.key)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kizuna test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"


@pytest.mark.parametrize("certified", ["hooks.test", "other.test"])
def test_https_goes_to_the_checked_address_and_verifies_the_name(
    session, settings_env, monkeypatch, tmp_path, certified
):
    """The connection goes to the address that was checked, yet TLS checks the certificate against the name."""
    import socket
    import ssl
    import threading

    import certifi

    from tests.messaging.http_fakes import Receiver, _handler_for, _Server

    ca, cert, key = _certificates(tmp_path, certified)
    target = Receiver()
    server = _Server(("127.0.0.1", 0), _handler_for(target))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host == "hooks.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(certifi, "where", lambda: str(ca))  # trust the test CA (httpx reads it per client)
    settings_env(webhook_allow="127.0.0.1")
    try:
        message = outgoing({"url": f"https://hooks.test:{port}/in", "payload": PAYLOAD})
        if certified == "hooks.test":
            with CHANNEL.connect(session) as conn:
                assert conn.send(message) == {
                    "status": 200,
                    "url": f"https://hooks.test:{port}/in",
                    "address": "127.0.0.1",
                    "endpoint": None,
                }
            assert target.requests[0].headers["host"] == f"hooks.test:{port}"
        else:  # a certificate for another name is not accepted although the address is the same
            with CHANNEL.connect(session) as conn, pytest.raises(TemporaryFailure, match="certificate|hostname"):
                conn.send(message)
            assert target.requests == []
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_whose_secret_cannot_be_read_fails_with_the_fix(session, admin, receiver, allow_loopback):
    from cryptography.fernet import Fernet

    endpoint, _ = create_endpoint(session, actor=admin, name="old", url=receiver.url())
    # As if saved under another KIZUNA_SECRET_KEY.
    endpoint.secret = Fernet(Fernet.generate_key()).encrypt(b"whsec_old").decode()
    session.commit()
    with CHANNEL.connect(session) as conn, pytest.raises(PermanentFailure) as failed:
        conn.send(outgoing({"endpoint": "old", "payload": PAYLOAD}))
    assert failed.value.reason == "endpoint_secret_unreadable" and "KIZUNA_SECRET_KEY" in str(failed.value)
    assert receiver.requests == []
