"""The webhook channel: a JSON POST of the rendered payload, signed, with an idempotency key, to a checked address.

A webhook message's rendered content names its receiver, ``{"endpoint": "crm-sync", "payload": {...}}`` (an
endpoint an admin set up, with its own secret) or ``{"url": "https://...", "payload": {...}}`` (signed with a
key derived from ``KIZUNA_SECRET_KEY`` for that URL). Every request carries:

- ``X-Kizuna-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` under the secret (its text, as
  UTF-8): the receiver recomputes it and refuses an old ``t`` (a replay);
- ``Idempotency-Key: <delivery key>``, the same on every attempt, so a receiver drops a repeat.

2xx is accepted. 408, 429, 5xx, timeouts and refused connections are temporary (the sender backs off and
tries again); any other answer (a 4xx, a redirect, which is never followed) is a permanent refusal. The
address is checked against private networks first (``messaging/ssrf.py``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.config import get_settings
from kizuna.db import get_engine, new_session
from kizuna.keys import BadToken, decrypt, derive
from kizuna.messaging import channels, ssrf
from kizuna.messaging.channels import Outgoing, PermanentFailure, TemporaryFailure
from kizuna.messaging.webhook_models import WebhookAllow, WebhookEndpoint

SIGNATURE_HEADER = "X-Kizuna-Signature"
# How much of a receiver's answer is kept (as the failure's detail): enough to read, never a large download.
_ANSWER_BYTES = 2048
_TEMPORARY = {408, 425, 429}


# --- signatures ------------------------------------------------------------------------------------------


def url_secret(url: str) -> str:
    """The signing secret of a webhook sent to ``url`` without an endpoint: derived, so nothing is stored."""
    return "whsec_" + base64.urlsafe_b64encode(derive(f"webhook:{url.strip()}")).rstrip(b"=").decode()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Kizuna-Signature`` value for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does: the signature is ours and its time is within ``tolerance`` seconds of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- where a message goes --------------------------------------------------------------------------------


def allowlist(session: Session) -> ssrf.Allowlist:
    """``KIZUNA_WEBHOOK_ALLOW`` and the allow-list page's entries."""
    entries = [e for e in get_settings().webhook_allow.split(",") if e.strip()]
    entries += list(session.scalars(select(WebhookAllow.entry)))
    return ssrf.Allowlist.parse(entries)


def active_endpoints(session: Session) -> dict[str, tuple[str, str | None]]:
    """Endpoint name -> (url, secret) for the active endpoints; the secret is None when it cannot be decrypted."""
    rows = session.execute(
        select(WebhookEndpoint.name, WebhookEndpoint.url, WebhookEndpoint.secret).where(WebhookEndpoint.active)
    )
    return {name: (url, _readable(secret)) for name, url, secret in rows}


def _readable(stored: str) -> str | None:
    try:
        return decrypt(stored)
    except BadToken:
        return None


def payload_of(outgoing: Outgoing) -> Any:
    """The rendered payload; without one, what identifies the message (for receivers that look it up)."""
    if "payload" in outgoing.rendered:
        return outgoing.rendered["payload"]
    return {
        "message_id": outgoing.message_id,
        "customer_id": outgoing.customer_id,
        "kind": outgoing.kind,
        "delivery_key": outgoing.delivery_key,
    }


class WebhookConnection:
    """Posts for one batch of the sender; one HTTP client per checked address, closed with the batch."""

    def __init__(self, endpoints: dict[str, tuple[str, str | None]], allow: ssrf.Allowlist) -> None:
        self.endpoints = endpoints
        self.allow = allow
        settings = get_settings()
        self.timeout = httpx.Timeout(
            settings.webhook_read_timeout_seconds, connect=settings.webhook_connect_timeout_seconds
        )
        self._clients: dict[tuple[str, str, str, int], httpx.Client] = {}

    def _receiver(self, outgoing: Outgoing) -> tuple[str, str, str | None]:
        """(url, secret, endpoint name) of the message's receiver."""
        name = outgoing.rendered.get("endpoint")
        if name:
            if name not in self.endpoints:
                raise PermanentFailure(f"no active webhook endpoint named {name!r}", reason="unknown_endpoint")
            url, secret = self.endpoints[name]
            if secret is None:
                raise PermanentFailure(
                    f"the signing secret of endpoint {name!r} cannot be read (KIZUNA_SECRET_KEY changed since it was "
                    "made): make a new one on the webhooks page",
                    reason="endpoint_secret_unreadable",
                )
            return url, secret, name
        url = outgoing.rendered.get("url") or outgoing.address
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PermanentFailure("a webhook message names an endpoint or a URL", reason="no_address")
        return url, url_secret(url), None

    def _client(self, target: ssrf.Target) -> httpx.Client:
        # One client per name and address: a TLS connection verified for one host is never reused for another.
        key = (target.scheme, target.host, str(target.address), target.port)
        if key not in self._clients:
            # trust_env=False: a proxy from the environment would connect somewhere other than the checked address.
            self._clients[key] = httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False)
        return self._clients[key]

    def send(self, outgoing: Outgoing) -> dict[str, Any]:
        url, secret, endpoint = self._receiver(outgoing)
        try:
            target = ssrf.check(url, self.allow)
        except ssrf.Unresolvable as exc:
            raise TemporaryFailure(exc.message, reason="unresolvable") from exc
        except ssrf.Refused as exc:
            raise PermanentFailure(exc.message, reason="address_refused") from exc
        body = json.dumps(payload_of(outgoing), ensure_ascii=False, separators=(",", ":"), default=str).encode()
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Kizuna-CRM-Webhook",
            "Idempotency-Key": outgoing.delivery_key,
            SIGNATURE_HEADER: sign(secret, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            with self._client(target).stream(
                "POST", target.connect_url, content=body, headers=headers, extensions=extensions
            ) as response:
                answer = _read_some(response)
        except httpx.TimeoutException as exc:
            raise TemporaryFailure(
                f"{target.host} did not answer in time ({type(exc).__name__})", reason="timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"{target.host} could not be reached: {exc}", reason="unreachable") from exc
        status = response.status_code
        details = {"status": status, "url": url, "address": str(target.address), "endpoint": endpoint}
        if 200 <= status < 300:
            return details
        text = answer.decode("utf-8", "replace").strip()
        said = f": {text[:300]}" if text else ""
        if status in _TEMPORARY or status >= 500:
            raise TemporaryFailure(f"{target.host} answered {status}{said}", reason=f"http_{status}")
        if 300 <= status < 400:
            raise PermanentFailure(
                f"{target.host} answered {status} (a redirect to {response.headers.get('location', '?')[:200]}); "
                "redirects are not followed: use the final URL",
                reason="redirect",
            )
        raise PermanentFailure(f"{target.host} refused the webhook ({status}){said}", reason=f"http_{status}")

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _read_some(response: httpx.Response) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _ANSWER_BYTES:
            break
    return data[:_ANSWER_BYTES]


class WebhookChannel:
    name = "webhook"

    def addresses(self, session: Session, customer_ids: list[int]) -> dict[int, str]:
        """Every customer: a webhook's receiver comes from the message (its endpoint or URL), not the customer."""
        return {customer_id: self.name for customer_id in customer_ids}

    @contextmanager
    def connect(self, session: Session | None = None) -> Iterator[WebhookConnection]:
        """A connection knowing the endpoints and allow-list in ``session``'s database (the configured one if None)."""
        if session is None:
            with new_session(get_engine()) as own:
                connection = WebhookConnection(active_endpoints(own), allowlist(own))
        else:
            connection = WebhookConnection(active_endpoints(session), allowlist(session))
        try:
            yield connection
        finally:
            connection.close()


CHANNEL = WebhookChannel()
channels.register(CHANNEL)
