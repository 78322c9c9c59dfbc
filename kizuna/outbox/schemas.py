from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SubscriberStatusRead(BaseModel):
    subscriber: str
    declared: bool = Field(description="False when deliveries exist for a subscriber this server no longer declares.")
    due: int
    scheduled: int
    running: int
    retrying: int
    dead: int
    done: int
    oldest_due: dt.datetime | None


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: int
    subscriber: str
    target: str
    status: str
    attempts: int
    available_at: dt.datetime
    last_error: str | None
    finished_at: dt.datetime | None
    topic: str
    origin: str
    customer_id: int | None
    payload: dict[str, Any]


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivery_ids: list[int] | None = Field(default=None, max_length=1000)
    subscriber: str | None = Field(default=None, max_length=100)


class RetryResult(BaseModel):
    retried: int
