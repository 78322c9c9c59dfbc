from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from kizuna.schemas import FreeJSON, Input, Output, StoredJSON, Text, UTCTime

EventChannel = Literal["web", "email", "store", "call", "sns", "line", "sms", "app", "other"]
CHANNELS: tuple[str, ...] = EventChannel.__args__  # type: ignore[attr-defined]
# An event type is printable text without control characters; the tracking API keeps names exactly as sent.
EVENT_TYPE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
EVENT_TYPE_MAX = 200


class EventCreate(Input):
    external_id: Text | None = Field(default=None, max_length=128, description="Makes a resend idempotent.")
    customer_id: int | None = None
    anonymous_id: Text | None = Field(default=None, max_length=128)
    # As tracking SDKs send them ("Order Completed", "Product Viewed"): any printable text up to 200 characters.
    type: Text = Field(
        min_length=1, max_length=200, pattern=EVENT_TYPE_PATTERN, examples=["page_view", "Order Completed"]
    )
    channel: EventChannel
    occurred_at: UTCTime
    source: Text | None = Field(default=None, max_length=64)
    properties: FreeJSON = Field(default_factory=dict)

    @model_validator(mode="after")
    def _someone(self) -> EventCreate:
        if self.customer_id is None and not self.anonymous_id:
            raise PydanticCustomError("event_needs_customer", "an event needs a customer_id or an anonymous_id")
        return self


class EventRead(Output):
    id: int
    external_id: str | None
    customer_id: int | None
    anonymous_id: str | None
    type: str
    channel: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    source: str | None
    properties: StoredJSON
