"""Request and response bodies of ``/api/v1/webhooks`` subscriptions, events and deliveries."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from kizuna.schemas import Input, Output


class EventTypeRead(Output):
    name: str
    topic: str = Field(description="The outbox topic the event comes from.")
    version: int
    description: str


class SubscriptionCreate(Input):
    endpoint_id: int
    events: list[str] = Field(min_length=1, max_length=50, description="Event names, from GET /webhooks/events.")
    include_backfill: bool = Field(default=False, description="Also send history that arrived in bulk (imports).")
    active: bool = True


class SubscriptionUpdate(Input):
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    include_backfill: bool | None = None
    active: bool | None = None


class SubscriptionRead(Output):
    id: int
    endpoint_id: int
    events: list[str]
    include_backfill: bool
    active: bool
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime


class DeliveryRead(Output):
    id: int
    endpoint_id: int
    endpoint: str | None
    subscription_id: int
    event: str
    event_id: str = Field(description="The body's id (evt_<n>): the same for every subscription of one event.")
    customer_id: int | None
    status: str = Field(description="pending, retrying, delivered, dead or skipped.")
    attempts: int
    response_status: int | None
    latency_ms: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    idempotency_key: str
    payload: str = Field(description="The JSON body sent, as sent.")


class DeliveryPage(Output):
    items: list[DeliveryRead]
    next_before_id: int | None = Field(description="Pass as before_id for the next (older) page.")
