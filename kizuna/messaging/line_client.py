"""Talking to the LINE Messaging API: push, multicast, quota, account-link tokens, bot info.

Plain HTTPS with httpx (the one HTTP client Kizuna uses) rather than the ``line-bot-sdk``: what matters here is
exact control of ``X-Line-Retry-Key`` and of how each answer is classified, which is a few lines either way.

Every push carries ``X-Line-Retry-Key``, the message's delivery key as a UUID, fixed when the message was
queued. LINE accepts a key once: the same request again (after a crash between LINE's answer and our record of
it, or after a timeout) is answered 409 and sends nothing, so a 409 means the message went out before. LINE
remembers a key for 24 hours after its first request (developers.line.biz, "Retrying a failed API request"),
so a message whose first attempt is older than that is not retried (``RETRY_KEY_HOURS``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from kizuna.config import get_settings
from kizuna.messaging.channels import PermanentFailure, TemporaryFailure

PUSH = "/v2/bot/message/push"
MULTICAST = "/v2/bot/message/multicast"
QUOTA = "/v2/bot/message/quota"
CONSUMPTION = "/v2/bot/message/quota/consumption"
BOT_INFO = "/v2/bot/info"
MULTICAST_MAX = 500
MESSAGES_MAX = 5
# A little less than LINE's 24 hours, for clocks that disagree.
RETRY_KEY_HOURS = 23
# Retry keys of multicast batches are derived from the caller's key in this namespace, so a replay of the same
# batch plan sends the same keys.
_NAMESPACE = uuid.UUID("0f6b5a8e-91c4-4d2b-8f0e-6c696e652d6b")


@dataclass(frozen=True)
class LineConfig:
    token: str
    secret: str
    api_base: str
    bot_basic_id: str | None = None

    @property
    def ready(self) -> bool:
        return bool(self.token)


def retry_key(delivery_key: str) -> str:
    """The ``X-Line-Retry-Key`` of a message: its delivery key (a UUID's hex) as a UUID."""
    try:
        return str(uuid.UUID(hex=delivery_key))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, delivery_key))


def check_user_id(user_id: str) -> None:
    if not (isinstance(user_id, str) and len(user_id) == 33 and user_id[0] == "U"):
        raise PermanentFailure(f"{str(user_id)[:40]!r} is not a LINE user id (U + 32 hex)", reason="invalid_address")
    try:
        int(user_id[1:], 16)
    except ValueError:
        raise PermanentFailure(f"{user_id[:40]!r} is not a LINE user id", reason="invalid_address") from None


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """LINE message objects (1 to 5, each with a ``type``); a permanent failure names what is wrong."""
    if not isinstance(messages, list) or not 1 <= len(messages) <= MESSAGES_MAX:
        raise PermanentFailure(
            f"a LINE message is 1 to {MESSAGES_MAX} message objects, not {messages!r:.80}", reason="invalid_content"
        )
    for item in messages:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise PermanentFailure(f"a LINE message object needs a type: {item!r:.80}", reason="invalid_content")
    return messages


def _problem(response: httpx.Response) -> str:
    """LINE's own words for a refusal: its ``message`` and each detail's property and message."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:300]
    text = str(body.get("message") or response.reason_phrase)
    details = [
        f"{d.get('property', '')}: {d.get('message', '')}".strip(": ")
        for d in body.get("details") or []
        if isinstance(d, dict)
    ]
    return f"{text} ({'; '.join(details)})" if details else text


def classify(response: httpx.Response) -> dict[str, Any]:
    """The acceptance of a push or multicast, or the failure it is.

    2xx: accepted. 409: the retry key was accepted before (the message went out then): sent. 429 (rate or
    monthly limit), 5xx, 401/403 (a token to fix; the message waits for it): try again later. Any other 4xx
    (400: an unknown user id, a malformed message): LINE refuses this message for good.
    """
    status = response.status_code
    request_id = response.headers.get("x-line-request-id")
    if 200 <= status < 300:
        try:
            sent = response.json().get("sentMessages")
        except (ValueError, AttributeError):
            sent = None
        return {"status": status, "request_id": request_id, "sent_messages": sent}
    if status == 409:
        return {
            "status": 409,
            "already_accepted": True,
            "request_id": request_id,
            "accepted_request_id": response.headers.get("x-line-accepted-request-id"),
        }
    problem = _problem(response)
    if status == 429:
        raise TemporaryFailure(f"LINE answered 429 (rate or monthly limit): {problem}", reason="rate_limited")
    if status >= 500:
        raise TemporaryFailure(f"LINE answered {status}: {problem}", reason="line_unavailable")
    if status in (401, 403):
        raise TemporaryFailure(
            f"LINE refused the channel access token ({status}): {problem}; fix it on the LINE settings page",
            reason="line_unauthorized",
        )
    raise PermanentFailure(f"LINE refused the message ({status}): {problem}", reason="refused")


class LineClient:
    """One HTTP client for a batch of calls to LINE (connections are reused); close it when done."""

    def __init__(self, config: LineConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        timeout = get_settings().line_timeout_seconds
        self._http = httpx.Client(
            base_url=config.api_base.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Authorization": f"Bearer {config.token}", "User-Agent": "Kizuna-CRM"},
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self.config.ready:
            raise TemporaryFailure(
                "no LINE channel access token: save one on the LINE settings page or set KIZUNA_LINE_CHANNEL_TOKEN",
                reason="line_not_configured",
            )
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            # LINE may have accepted it: the retry carries the same key, and a 409 will say so.
            raise TemporaryFailure(f"no answer from LINE in time ({type(exc).__name__})", reason="timeout") from exc
        except httpx.HTTPError as exc:
            raise TemporaryFailure(f"LINE could not be reached: {exc}", reason="unreachable") from exc

    def push(self, to: str, messages: list[dict[str, Any]], *, key: str) -> dict[str, Any]:
        """Push ``messages`` to one user under ``X-Line-Retry-Key: key``; the acceptance, or a failure."""
        check_user_id(to)
        body = {"to": to, "messages": check_messages(messages)}
        return classify(self._call("POST", PUSH, json=body, headers={"X-Line-Retry-Key": key}))

    def multicast(self, batch: MulticastBatch, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Send one planned batch (at most 500 users) under its own retry key."""
        for user_id in batch.to:
            check_user_id(user_id)
        body = {"to": list(batch.to), "messages": check_messages(messages)}
        result = classify(self._call("POST", MULTICAST, json=body, headers={"X-Line-Retry-Key": batch.retry_key}))
        return {**result, "batch": batch.index, "recipients": len(batch.to)}

    def multicast_all(self, user_ids: list[str], messages: list[dict[str, Any]], *, key: str) -> list[dict[str, Any]]:
        """Every batch of ``plan_multicast(user_ids, key)``; a failure stops the run and is raised.

        Running it again with the same users and key is safe: the batches LINE accepted answer 409.
        """
        return [self.multicast(batch, messages) for batch in plan_multicast(user_ids, key)]

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._call("GET", path)
        if response.status_code != 200:
            classify(response)
            raise TemporaryFailure(f"LINE answered {response.status_code} to {path}", reason="line_unavailable")
        return response.json()

    def quota(self) -> dict[str, Any]:
        """This month's message quota: ``limit`` (None when unlimited), ``used`` and ``remaining``."""
        quota = self._get_json(QUOTA)
        used = int(self._get_json(CONSUMPTION).get("totalUsage", 0))
        limit = int(quota["value"]) if quota.get("type") == "limited" and "value" in quota else None
        return {
            "type": quota.get("type"),
            "limit": limit,
            "used": used,
            "remaining": None if limit is None else max(limit - used, 0),
        }

    def bot_info(self) -> dict[str, Any]:
        return self._get_json(BOT_INFO)

    def link_token(self, user_id: str) -> str:
        """A link token for LINE's account-link flow, issued for one LINE user (valid 10 minutes, used once)."""
        check_user_id(user_id)
        response = self._call("POST", f"/v2/bot/user/{user_id}/linkToken")
        if response.status_code != 200:
            classify(response)
            raise TemporaryFailure(f"LINE answered {response.status_code} for a link token", reason="line_unavailable")
        return str(response.json()["linkToken"])


@dataclass(frozen=True)
class MulticastBatch:
    index: int
    to: tuple[str, ...]
    retry_key: str


def plan_multicast(user_ids: list[str], key: str) -> list[MulticastBatch]:
    """Users in batches of 500, each with a retry key derived from ``key`` and its place.

    Users are deduplicated and sorted, so the same users and key always give the same batches and keys: a
    replay after a crash is answered 409 for every batch LINE already accepted. LINE remembers a retry key for
    24 hours after its first request: replay within that.
    """
    ordered = sorted(set(user_ids))
    return [
        MulticastBatch(
            index=number,
            to=tuple(ordered[start : start + MULTICAST_MAX]),
            retry_key=str(uuid.uuid5(_NAMESPACE, f"{key}:multicast:{number}")),
        )
        for number, start in enumerate(range(0, len(ordered), MULTICAST_MAX))
    ]
