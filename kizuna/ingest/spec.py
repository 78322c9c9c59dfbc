"""Reading Segment-spec calls (identify, track, page, screen, group, alias) into checked messages.

Hand-written checks rather than a Pydantic model per message: a batch of 100 events is parsed in well under a
millisecond this way, and each problem is reported per message with the field it concerns, so that one bad
message does not cost the others (the batch answers which were rejected, and why).

Times follow Segment's documented rules: every call carries ``timestamp`` (or ``originalTimestamp``), the
client clock's time of the call, and ``sentAt``, the client clock's time of sending; the time kept is
``receivedAt - (sentAt - timestamp)``, which removes the client's clock skew. A time that is still in the
future after that correction is rejected: it can only be a wrong clock or a wrong field.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from kizuna.events.schemas import EVENT_TYPE_MAX

CALLS = ("identify", "track", "page", "screen", "group", "alias")
# Segment's documented limits: 32 KB per call (and per message in a batch), 500 KB per batch request.
MAX_CALL_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# A corrected time this far past the server's clock is refused (a little slack for the server's own clock).
FUTURE_SLACK = dt.timedelta(minutes=5)
MAX_ID = 200
# Event types the page and screen calls are kept as (names are kept in properties.name).
PAGE_TYPE = "page_view"
SCREEN_TYPE = "screen_view"


class MessageError(ValueError):
    """One message of a call or batch cannot be accepted; ``field`` names what is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Message:
    index: int
    call: str
    message_id: str | None
    user_id: str | None
    anonymous_id: str | None
    occurred_at: dt.datetime
    event: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    previous_id: str | None = None
    group_id: str | None = None
    channel: str = "other"


def parse_time(value: object, name: str) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise MessageError(f"{name} must be an ISO-8601 date string", field=name)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(f"{name} {value[:40]!r} is not an ISO-8601 date", field=name) from None
    if parsed.tzinfo is None:
        # The spec says UTC; a time without a zone is read as UTC rather than refused.
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _id(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MessageError(f"{name} must be a string", field=name)
    text = str(value).strip()
    if not text:
        return None
    # Every white space but the ASCII space is unprintable, so "printable and no space" is "no white space".
    if len(text) > MAX_ID or not text.isprintable() or " " in text:
        raise MessageError(f"{name} must be 1-{MAX_ID} printable characters without spaces", field=name)
    return text


def _object(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(f"{name} must be an object", field=name)
    return value


def _channel(call: str, context: dict[str, Any]) -> str:
    if call == "screen":
        return "app"
    if call == "page" or isinstance(context.get("page"), dict):
        return "web"
    library = context.get("library")
    name = library.get("name", "") if isinstance(library, dict) else ""
    if isinstance(name, str) and any(k in name for k in ("ios", "android", "react-native", "flutter", "kotlin")):
        return "app"
    if isinstance(name, str) and ("analytics.js" in name or "kizuna.js" in name):
        return "web"
    return "other"


def parse(
    raw: object, *, index: int, call: str | None, received_at: dt.datetime, sent_at: dt.datetime | None
) -> Message:
    """One message, checked; ``call`` is the endpoint's call (None in a batch: the message's ``type`` says)."""
    if not isinstance(raw, dict):
        raise MessageError("a message is a JSON object")
    kind = raw.get("type") if call is None else call
    if kind not in CALLS:
        raise MessageError(f"type must be one of {', '.join(CALLS)}", field="type")
    message_id = _id(raw.get("messageId"), "messageId")
    user_id = _id(raw.get("userId"), "userId")
    anonymous_id = _id(raw.get("anonymousId"), "anonymousId")
    if kind != "alias" and user_id is None and anonymous_id is None:
        raise MessageError("a message needs a userId or an anonymousId", field="userId")
    context = _object(raw.get("context"), "context")
    original = raw.get("timestamp") or raw.get("originalTimestamp")
    sent = raw.get("sentAt")
    sent_at = parse_time(sent, "sentAt") if sent else sent_at
    if original:
        occurred = parse_time(original, "timestamp")
        if sent_at is not None:
            occurred = received_at - (sent_at - occurred)
    else:
        occurred = received_at
    if occurred > received_at + FUTURE_SLACK:
        raise MessageError(
            f"timestamp {occurred.isoformat()} is in the future even after correcting the client's clock",
            field="timestamp",
        )
    message = Message(
        index=index,
        call=kind,
        message_id=message_id,
        user_id=user_id,
        anonymous_id=anonymous_id,
        occurred_at=occurred,
        channel=_channel(kind, context),
    )
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("a track call needs an event name", field="event")
        if len(event) > EVENT_TYPE_MAX or not event.isprintable():
            raise MessageError(f"event must be printable text of at most {EVENT_TYPE_MAX} characters", field="event")
        message.event = event
        message.properties = _object(raw.get("properties"), "properties")
    elif kind in ("page", "screen"):
        message.event = PAGE_TYPE if kind == "page" else SCREEN_TYPE
        properties = dict(_object(raw.get("properties"), "properties"))
        for key in ("name", "category"):
            if isinstance(raw.get(key), str) and key not in properties:
                properties[key] = raw[key]
        page = context.get("page")
        if isinstance(page, dict):
            for key in ("url", "path", "title", "referrer"):
                if key in page and key not in properties:
                    properties[key] = page[key]
        message.properties = properties
    elif kind == "identify":
        message.traits = _object(raw.get("traits") or context.get("traits"), "traits")
    elif kind == "group":
        message.group_id = _id(raw.get("groupId"), "groupId")
        if message.group_id is None:
            raise MessageError("a group call needs a groupId", field="groupId")
        message.event = "group"
        message.properties = {"group_id": message.group_id, **_object(raw.get("traits"), "traits")}
    elif kind == "alias":
        message.previous_id = _id(raw.get("previousId"), "previousId")
        if message.previous_id is None or user_id is None:
            raise MessageError("an alias call needs a previousId and a userId", field="previousId")
    return message


def message_size(raw: object) -> int:
    """Bytes of one message as JSON (for the 32 KB per message limit of a batch)."""
    return len(json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode())
