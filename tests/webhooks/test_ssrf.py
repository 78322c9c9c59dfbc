"""Where domain-event webhooks may go: redirects to internal addresses are refused, the checked address is the
one connected to. Real local HTTP servers: the receiver listens on 127.0.0.2 (allow-listed by address), and
127.0.0.1 stands for an internal service that is not."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from kizuna.customers.schemas import CustomerCreate
from kizuna.customers.service import create_customer
from kizuna.webhooks import service
from tests.messaging.http_fakes import Receiver, _handler_for, _serve
from tests.webhooks.conftest import drain, subscribe


@pytest.fixture
def outside() -> Iterator[Receiver]:
    """The receiver, on 127.0.0.2: the only address allow-listed in these tests."""
    target = Receiver()
    server, thread = _serve(_handler_for(target), host="127.0.0.2")
    target.port = server.server_address[1]
    yield target
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def allow_receiver_only(settings_env):  # noqa: ANN001, ANN201
    settings_env(webhook_allow="127.0.0.2", webhook_connect_timeout_seconds=1, outbox_max_attempts=1)


def _one_event(db, session, admin) -> service.DeliveryView:  # noqa: ANN001
    create_customer(session, actor=admin, data=CustomerCreate(email="r@example.jp"))
    session.commit()
    drain(db)
    (view,) = service.list_deliveries(session, actor=admin)
    return view


def test_a_redirect_to_the_metadata_address_is_refused(db, session, admin, outside, allow_receiver_only):
    outside.answers = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    subscribe(session, admin, outside.url("/hook", host="127.0.0.2"), ["customer.created"])
    view = _one_event(db, session, admin)
    assert len(outside.requests) == 1
    assert view.status == "dead"
    assert "refused http://169.254.169.254/latest/meta-data/" in (view.last_error or "")
    assert "link-local" in (view.last_error or "")


def test_a_redirect_to_a_loopback_service_not_allow_listed_is_refused(
    db, session, admin, outside, receiver, allow_receiver_only
):
    # ``receiver`` listens on 127.0.0.1: an internal service the redirect tries to reach.
    outside.answers = [(302, {"Location": receiver.url("/admin")})]
    subscribe(session, admin, outside.url("/hook", host="127.0.0.2"), ["customer.created"])
    view = _one_event(db, session, admin)
    assert receiver.requests == []
    assert view.status == "dead" and "127.0.0.1" in (view.last_error or "") and "loopback" in (view.last_error or "")


def test_a_redirect_to_an_allowed_address_is_followed_with_the_same_signed_body(
    db, session, admin, outside, allow_receiver_only
):
    outside.answers = [(307, {"Location": "/moved"})]
    subscribe(session, admin, outside.url("/hook", host="127.0.0.2"), ["customer.created"])
    view = _one_event(db, session, admin)
    assert [r.path for r in outside.requests] == ["/hook", "/moved"]
    assert outside.requests[0].body == outside.requests[1].body
    assert json.loads(outside.requests[1].body)["type"] == "customer.created"
    assert view.status == "delivered"


def test_the_checked_address_is_the_one_connected_to(db, session, admin, outside, settings_env, monkeypatch):
    """DNS rebinding: the name answers the allowed address when checked, an internal one afterwards."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2", "127.0.0.2"])  # the check at save time, and the one before sending

    def rebinding(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host == "hooks.rebind.example":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings_env(webhook_allow="127.0.0.2")
    subscribe(session, admin, f"http://hooks.rebind.example:{outside.port}/hook", ["customer.created"])
    view = _one_event(db, session, admin)
    assert view.status == "delivered"
    assert outside.requests[0].headers["host"] == f"hooks.rebind.example:{outside.port}"


def test_a_private_receiver_is_refused_until_allow_listed(db, session, admin, receiver, settings_env):
    from kizuna.messaging import ssrf, webhook_admin

    settings_env(webhook_allow="127.0.0.1")
    subscribe(session, admin, receiver.url(), ["customer.created"])
    settings_env(webhook_allow="", outbox_max_attempts=1)  # the admin took the address off the list
    view = _one_event(db, session, admin)
    assert receiver.requests == [] and view.status == "dead" and "loopback" in (view.last_error or "")
    with pytest.raises(ssrf.Refused):
        webhook_admin.create_endpoint(session, actor=admin, name="other", url=receiver.url())
