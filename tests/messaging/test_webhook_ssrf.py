"""SSRF: webhooks never reach private, loopback or link-local addresses unless an admin allow-listed them."""

from __future__ import annotations

import socket

import pytest

from kizuna.messaging import ssrf
from kizuna.messaging.channels import Outgoing, PermanentFailure
from kizuna.messaging.queue import new_delivery_key
from kizuna.messaging.webhook import CHANNEL

NOTHING = ssrf.Allowlist()


def send(session, url: str) -> dict:  # noqa: ANN001
    with CHANNEL.connect(session) as conn:
        return conn.send(Outgoing(1, new_delivery_key(), 1, "service", "webhook", {"url": url, "payload": {"a": 1}}))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.1.2.3:8080/hook", "loopback"),
        ("http://10.0.0.5/hook", "private"),
        ("http://172.16.1.1/hook", "private"),
        ("http://192.168.1.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.64.0.1/", "not globally routable"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[fd00::1]/hook", "private"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[2002:7f00:1::]/hook", "loopback"),
        ("http://[2002:a9fe:a9fe::]/", "link-local"),
        ("http://[64:ff9b::a00:1]/", "private"),
        ("http://localhost/hook", "loopback"),
        ("http://LocalHost:8080/hook", "loopback"),
    ],
)
def test_internal_addresses_are_refused(url, reason):
    with pytest.raises(ssrf.Refused) as refused:
        ssrf.check(url, NOTHING)
    assert reason in refused.value.message
    assert refused.value.key == "error.webhook_address_refused"


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "http://8.8.8.8:8080/x?y=1",
        "https://[2606:4700:4700::1111]/",
        "http://[2002:808:808::]/",
    ],
)
def test_public_addresses_pass(url):
    target = ssrf.check(url, NOTHING)
    assert ssrf.why_not_public(target.address) is None
    assert target.connect_url.startswith(f"{target.scheme}://")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "http:///nohost",
        "https://user:pw@example.com/",
        "http://example.com:99999/",
        "not a url",
    ],
)
def test_urls_that_are_not_http_are_refused(url):
    with pytest.raises(ssrf.Refused):
        ssrf.check(url, NOTHING)


def test_loopback_is_refused_without_the_allow_list_and_nothing_is_sent(session, receiver):
    with pytest.raises(PermanentFailure) as refused:
        send(session, receiver.url())
    assert refused.value.reason == "address_refused" and "127.0.0.1" in str(refused.value)
    assert receiver.requests == []


def test_ipv6_loopback_is_refused_then_allowed(session, receiver6, settings_env):
    url = f"http://[::1]:{receiver6.port}/hook"
    with pytest.raises(PermanentFailure):
        send(session, url)
    assert receiver6.requests == []
    settings_env(webhook_allow="::1")
    assert send(session, url)["address"] == "::1"
    assert receiver6.requests[0].headers["host"] == f"[::1]:{receiver6.port}"


def test_a_name_resolving_to_loopback_is_refused_until_the_name_is_allowed(session, receiver, settings_env):
    url = receiver.url(host="localhost")
    with pytest.raises(PermanentFailure):
        send(session, url)
    settings_env(webhook_allow="localhost")
    assert send(session, url)["address"] == "127.0.0.1"
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_an_allowed_network_does_not_open_others(session, receiver, settings_env):
    settings_env(webhook_allow="10.0.0.0/8,hooks.intranet")
    with pytest.raises(PermanentFailure):
        send(session, receiver.url())
    assert receiver.requests == []


def test_the_checked_address_is_the_one_connected_to(session, receiver, settings_env, monkeypatch):
    """DNS rebinding: the name answers an allowed address for the check and an internal one afterwards."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host == "rebind.example":
            # First answer: the allowed receiver; any later one: an unroutable internal address.
            address = next(answers, "10.255.255.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings_env(webhook_allow="127.0.0.1", webhook_connect_timeout_seconds=1)
    result = send(session, f"http://rebind.example:{receiver.port}/hook")
    assert result["address"] == "127.0.0.1" and result["status"] == 200
    assert receiver.requests[0].headers["host"] == f"rebind.example:{receiver.port}"


def test_every_address_of_a_name_must_pass(monkeypatch):
    def two(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two)
    with pytest.raises(ssrf.Refused, match="169.254.169.254"):
        ssrf.check("https://mixed.example/hook", NOTHING)


def test_an_endpoint_to_an_internal_address_is_refused_when_saved(client):
    answer = client.post(
        "/api/v1/webhooks/endpoints", json={"name": "metadata", "url": "http://169.254.169.254/latest/meta-data/"}
    )
    assert answer.status_code == 422
    assert "169.254.169.254" in answer.json()["error"]["message"] and "allow-list" in answer.json()["error"]["message"]
    assert client.get("/api/v1/webhooks/endpoints").json() == []


def test_allow_listing_is_for_admins_and_refuses_everything_at_once(client, client_as):
    assert client_as("marketer").post("/api/v1/webhooks/allowlist", json={"entry": "10.0.0.0/8"}).status_code == 403
    assert client.post("/api/v1/webhooks/allowlist", json={"entry": "0.0.0.0/0"}).status_code == 422
    assert client.post("/api/v1/webhooks/allowlist", json={"entry": "not a host!"}).status_code == 422
    made = client.post("/api/v1/webhooks/allowlist", json={"entry": "10.1.2.0/24", "note": "intranet"})
    assert made.status_code == 201 and made.json()["entry"] == "10.1.2.0/24"
    assert client.post("/api/v1/webhooks/allowlist", json={"entry": "10.1.2.0/24"}).status_code == 409
    assert client.delete(f"/api/v1/webhooks/allowlist/{made.json()['id']}").status_code == 204
