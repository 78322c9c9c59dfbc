"""The ``webhooks`` outbox subscriber: each domain event fans out to the subscriptions that want it, and each
subscription's delivery is a signed POST of the body fixed at fan-out, retried by the outbox with back-off.

- Fan-out (the subscriber's own delivery, one transaction): the active subscriptions of active endpoints that
  list the event (and, for backfilled history, ask for it) each get a ``webhook_deliveries`` row with the body
  and its ``Idempotency-Key``, and an outbox delivery of their own (target = the subscription id).
- Each target delivery: the POST runs as the subscriber's ``effect``, outside any transaction (a slow receiver
  holds no lock); a failure is recorded on the log row at once and raised, so the outbox backs off, and after
  ``KIZUNA_OUTBOX_MAX_ATTEMPTS`` the delivery is dead (retried by hand from the log). Success is recorded,
  with the third-party provision record (APPI), in the transaction that marks the delivery done.
- Signed as journey webhooks are (``X-Kizuna-Signature``, ``messaging/webhook.py``); the address is checked
  against private networks (``messaging/ssrf.py``) and the connection goes to the address checked. A redirect
  is followed (at most ``MAX_REDIRECTS``, POST again with the same body) only to a URL that passes the same
  check: a redirect to 169.254.169.254 or to a loopback address that is not allow-listed is refused.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urljoin

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.db import new_session, take_write_lock, utcnow
from kizuna.keys import BadToken, decrypt
from kizuna.messaging import ssrf
from kizuna.messaging.webhook import SIGNATURE_HEADER, allowlist, sign
from kizuna.messaging.webhook_models import WebhookEndpoint
from kizuna.outbox.registry import Delivery, GiveUp, declare
from kizuna.privacy.service import record_provisions
from kizuna.webhooks import events
from kizuna.webhooks.models import WebhookDelivery, WebhookSubscription

SUBSCRIBER = "webhooks"
MAX_REDIRECTS = 3
_ANSWER_BYTES = 2048
ACTOR = Actor.system("webhooks", origin="worker")


class WebhookFailed(Exception):
    """An attempt that did not reach a 2xx answer; the outbox records it and tries again later."""


class WebhookRefused(WebhookFailed, GiveUp):
    """The receiver refused the request itself (see ``REFUSALS``): sending the same bytes again cannot succeed,
    so the delivery goes dead at once instead of hammering the receiver for a day. Retried by hand once fixed."""


# 4xx answers that a retry of the same request cannot change. 408 (timeout), 409 (conflict), 425 (too early) and
# 429 (slow down) say "try later", and every 5xx may pass, so those are retried with back-off.
REFUSALS = frozenset({400, 401, 403, 404, 405, 410, 411, 413, 414, 415, 422})


@dataclass(frozen=True)
class Answer:
    status: int
    latency_ms: int
    url: str  # the URL that answered (after redirects)


@dataclass(frozen=True)
class Sent:
    answer: Answer
    endpoint: str
    host: str


@dataclass(frozen=True)
class Skipped:
    reason: str


# --- fan-out ---------------------------------------------------------------------------------------------


def listening(session: Session, topic: str) -> bool:
    """Whether an active subscription (of an active endpoint) wants an event of ``topic``: without one, the
    message gets no ``webhooks`` delivery at all (an import of a million customers costs nothing here)."""
    names = {e.name for e in events.for_topic(topic)}
    rows = session.scalars(
        select(WebhookSubscription.events)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
        .where(WebhookSubscription.active, WebhookEndpoint.active)
    )
    return any(names.intersection(chosen or []) for chosen in rows)


def matching(session: Session, delivery: Delivery) -> list[str]:
    """The subscriptions that get this message (their ids), each with its log row and body written now."""
    wanted = events.for_topic(delivery.topic)
    if not wanted:
        return []
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.endpoint_id, WebhookSubscription.events,
               WebhookSubscription.include_backfill)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
        .where(WebhookSubscription.active, WebhookEndpoint.active)
        .order_by(WebhookSubscription.id)
    ).all()  # fmt: skip
    targets: list[str] = []
    for event in wanted:
        backfill = event.is_backfill(delivery)
        chosen = [r for r in rows if event.name in (r.events or []) and (r.include_backfill or not backfill)]
        if not chosen:
            continue
        body = events.body(session, event, delivery)
        data = json.loads(body)["data"]
        # Only a customer who still exists (a deleted one's log rows would be deleted with them).
        customer_id = data.get("customer_id") if data.get("customer") else None
        for row in chosen:
            target = str(row.id)
            session.add(
                WebhookDelivery(
                    message_id=delivery.message_id,
                    subscription_id=row.id,
                    endpoint_id=row.endpoint_id,
                    event=event.name,
                    customer_id=customer_id if isinstance(customer_id, int) else None,
                    # The outbox delivery's own key: fixed now, before the first attempt, the same on every retry.
                    idempotency_key=dataclasses.replace(delivery, target=target).key,
                    body=body,
                )
            )
            targets.append(target)
    return targets


# --- one attempt -----------------------------------------------------------------------------------------


def send(engine: Engine, delivery: Delivery) -> Sent | Skipped:
    """POST the delivery's body to its endpoint (no transaction open meanwhile); raise ``WebhookFailed``."""
    subscription_id = int(delivery.target)
    session = new_session(engine)
    try:
        log = session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.message_id == delivery.message_id, WebhookDelivery.subscription_id == subscription_id
            )
        )
        subscription = session.get(WebhookSubscription, subscription_id)
        endpoint = session.get(WebhookEndpoint, subscription.endpoint_id) if subscription is not None else None
        allow = allowlist(session)
        if log is None:
            return Skipped("no delivery record")
        log_id, body, key, event = log.id, log.body, log.idempotency_key, log.event
        if subscription is None or endpoint is None:
            return Skipped("the subscription or its endpoint was deleted before the event went out")
        if not subscription.active or not endpoint.active:
            return Skipped("the subscription or its endpoint was paused before the event went out")
        name, url, stored_secret = endpoint.name, endpoint.url, endpoint.secret
    finally:
        session.rollback()
        session.close()
    try:
        secret = decrypt(stored_secret)
    except BadToken:
        return _failed(engine, log_id, None, None, f"the signing secret of endpoint {name!r} cannot be read "
                       "(KIZUNA_SECRET_KEY changed since it was made): rotate it on the webhooks page")  # fmt: skip
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Kizuna-CRM-Webhook",
        "Idempotency-Key": key,
        "X-Kizuna-Event": event,
    }
    started = time.monotonic()
    try:
        answer, text = post(url, body.encode(), headers, secret, allow)
    except WebhookFailed as exc:
        return _failed(engine, log_id, None, _ms(started), str(exc))
    if not 200 <= answer.status < 300:
        said = f": {text[:300]}" if text else ""
        error = f"{url} answered {answer.status}{said}"
        if answer.status in REFUSALS:
            error += " (not retried: the receiver refused the request; retry from the delivery log once it is fixed)"
        return _failed(engine, log_id, answer.status, answer.latency_ms, error, refused=answer.status in REFUSALS)
    return Sent(answer=answer, endpoint=name, host=ssrf.split(url).hostname or "")


def post(url: str, body: bytes, headers: dict[str, str], secret: str, allow: ssrf.Allowlist) -> tuple[Answer, str]:
    """POST ``body`` to ``url`` at the address checked for it, following a redirect only to a checked URL."""
    settings = get_settings()
    timeout = httpx.Timeout(settings.webhook_read_timeout_seconds, connect=settings.webhook_connect_timeout_seconds)
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            target = ssrf.check(current, allow)
        except ssrf.Refused as exc:
            via = f" (a redirect from {url})" if hop else ""
            raise WebhookFailed(f"refused {current[:200]}{via}: {exc.message}") from exc
        signed = {**headers, "Host": target.host_header, SIGNATURE_HEADER: sign(secret, body)}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        started = time.monotonic()
        try:
            # trust_env=False: a proxy from the environment would connect somewhere other than the checked address.
            with (
                httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                client.stream(
                    "POST", target.connect_url, content=body, headers=signed, extensions=extensions
                ) as response,
            ):
                answer = _read_some(response)
        except httpx.TimeoutException as exc:
            raise WebhookFailed(f"{target.host} did not answer in time ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise WebhookFailed(f"{target.host} could not be reached: {exc}") from exc
        status = response.status_code
        location = response.headers.get("location")
        if status in (301, 302, 303, 307, 308) and location:
            current = urljoin(current, location)
            continue
        text = answer.decode("utf-8", "replace").strip()
        return Answer(status=status, latency_ms=_ms(started), url=current), text
    raise WebhookFailed(f"{url} redirected more than {MAX_REDIRECTS} times")


def _read_some(response: httpx.Response) -> bytes:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _ANSWER_BYTES:
            break
    return data[:_ANSWER_BYTES]


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _failed(
    engine: Engine, log_id: int, status: int | None, latency_ms: int | None, error: str, *, refused: bool = False
) -> NoReturn:
    """Write what the receiver answered on the log row now (the outbox's transaction will roll back), then raise."""
    session = new_session(engine)
    try:
        take_write_lock(session.connection())
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == log_id)
            .values(response_status=status, latency_ms=latency_ms, last_attempt_at=utcnow(), note=error[:2000])
            .execution_options(synchronize_session=False)
        )
        session.commit()
    finally:
        session.close()
    raise WebhookRefused(error) if refused else WebhookFailed(error)


# --- the subscriber --------------------------------------------------------------------------------------


@declare(SUBSCRIBER, *events.topics(), targets=matching, effect=send, listening=listening)
def on_delivered(session: Session, delivery: Delivery) -> None:
    """Record the attempt's outcome, in the transaction that marks the outbox delivery done."""
    outcome = delivery.effect
    log = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.message_id == delivery.message_id,
            WebhookDelivery.subscription_id == int(delivery.target),
        )
    )
    if log is None:
        return
    now = utcnow()
    if isinstance(outcome, Skipped) or outcome is None:
        log.note = outcome.reason if isinstance(outcome, Skipped) else "not sent"
        return
    log.response_status = outcome.answer.status
    log.latency_ms = outcome.answer.latency_ms
    log.last_attempt_at = now
    log.delivered_at = now
    log.note = None
    data = json.loads(log.body).get("data") or {}
    if isinstance(log.customer_id, int):
        # APPI: an event about a customer sent to another company is a third-party provision, recorded per
        # customer.
        record_provisions(
            session,
            customer_ids=[log.customer_id],
            recipient=f"{outcome.endpoint} ({outcome.host})",
            fields=events.personal_fields(data) or ["customer_id"],
            via="webhook",
            purpose=f"webhook {log.event}",
            actor=ACTOR.label,
            reference=f"webhook_delivery:{log.id}",
        )
