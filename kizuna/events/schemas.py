from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from kizuna.schemas import FreeJSON, Input, Output, StoredJSON, Text, UTCTime

EventChannel = Literal["web", "email", "store", "call", "sns", "line", "sms", "app", "other"]
CHANNELS: tuple[str, ...] = EventChannel.__args__  # type: ignore[attr-defined]


class EventCreate(Input):
    external_id: Text | None = Field(default=None, max_length=128, description="Makes a resend idempotent.")
    customer_id: int | None = None
    anonymous_id: Text | None = Field(default=None, max_length=128)
    type: Text = Field(min_length=1, max_length=64, pattern=r"^[\w.:/-]+$", examples=["page_view", "store_visit"])
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
