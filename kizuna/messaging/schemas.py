"""Request and response shapes of the messaging API: templates, suppressions, the message log, bounces, settings."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from kizuna.schemas import Input, Output, Text, UTCTime

ChannelName = Literal["email", "line", "webhook"]
Kind = Literal["marketing", "service"]


class TemplateCreate(Input):
    name: Text = Field(min_length=1, max_length=200)
    channel: ChannelName = "email"
    kind: Kind = "marketing"
    subject: str = Field(default="", max_length=500)
    html: str = Field(default="", max_length=500_000)
    text: str = Field(default="", max_length=200_000)
    body: dict[str, Any] = Field(default_factory=dict, description="LINE messages or a webhook payload (templated).")
    from_name: str = Field(
        default="", max_length=200, description="Email: the From name, when not the settings' sender."
    )
    from_address: str = Field(default="", max_length=320, description="Email: the From address (empty: the settings').")
    reply_to: str = Field(default="", max_length=320, description="Email: where replies go (empty: the settings').")
    check_customer_id: int | None = Field(
        default=None, description="Check the template against this customer (default: the newest active customer)."
    )


class TemplateUpdate(Input):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    kind: Kind | None = None
    subject: str | None = Field(default=None, max_length=500)
    html: str | None = Field(default=None, max_length=500_000)
    text: str | None = Field(default=None, max_length=200_000)
    body: dict[str, Any] | None = None
    from_name: str | None = Field(default=None, max_length=200)
    from_address: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    version: int | None = Field(default=None, description="The version you read (409 when it changed since).")
    check_customer_id: int | None = None


class TemplateRead(Output):
    id: int
    name: str
    channel: str
    kind: str
    subject: str
    html: str
    text: str
    body: dict[str, Any]
    from_name: str
    from_address: str
    reply_to: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    updated_by: str


class PreviewRequest(Input):
    customer_id: int
    # Unsaved content to preview instead of a saved template's.
    channel: ChannelName = "email"
    kind: Kind = "marketing"
    subject: str = Field(default="", max_length=500)
    html: str = Field(default="", max_length=500_000)
    text: str = Field(default="", max_length=200_000)
    body: dict[str, Any] = Field(default_factory=dict)


class PreviewRead(Output):
    customer_id: int
    subject: str = ""
    html: str = ""
    text: str = ""
    body: dict[str, Any] = Field(default_factory=dict)


class SuppressionCreate(Input):
    channel: ChannelName = "email"
    address: Text = Field(min_length=1, max_length=2000)
    reason: Literal["manual", "hard_bounce", "complaint", "unsubscribe"] = "manual"
    note: str | None = Field(default=None, max_length=2000)


class SuppressionRead(Output):
    id: int
    channel: str
    address: str
    reason: str
    customer_id: int | None
    message_id: int | None
    note: str | None
    created_at: dt.datetime
    created_by: str


class MessageEventRead(Output):
    id: int
    kind: str
    url: str | None
    details: dict[str, Any]
    occurred_at: dt.datetime


class MessageRead(Output):
    id: int
    key: str
    delivery_key: str
    customer_id: int | None
    channel: str
    kind: str
    source: str
    source_id: int | None
    source_step: str | None
    variant: str | None
    template_id: int | None
    address: str | None
    status: str
    reason: str | None
    error: str | None
    attempts: int
    due_at: dt.datetime
    created_at: dt.datetime
    sent_at: dt.datetime | None
    opened_at: dt.datetime | None
    clicked_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    bounced_at: dt.datetime | None
    complained_at: dt.datetime | None


class MessageDetail(MessageRead):
    events: list[MessageEventRead] = Field(default_factory=list)


class MessagesPage(Output):
    items: list[MessageRead]
    next_before: int | None = Field(description="Pass as before= for the next (older) page; null at the end.")


class BounceReport(Input):
    """A bounce or complaint from the mail server, the ESP's webhook or a feedback loop."""

    type: Literal["bounce", "complaint"]
    bounce_type: Literal["hard", "soft"] = Field(default="hard", description="hard (permanent) or soft (temporary).")
    message_id: str | None = Field(
        default=None, max_length=500, description="The mail's Message-ID (<key@domain>) or its Kizuna message id."
    )
    email: str | None = Field(default=None, max_length=320, description="The recipient, when no Message-ID is known.")
    reason: str | None = Field(default=None, max_length=2000, description="The diagnostic (e.g. 550 5.1.1 ...).")
    occurred_at: UTCTime | None = None


class BounceBatch(Input):
    reports: list[BounceReport] = Field(min_length=1, max_length=1000)


class BounceResult(Output):
    recorded: int
    suppressed: int
    unmatched: list[int] = Field(
        description="Indexes of reports that matched no message (an address they name is still suppressed)."
    )


class ComplaintRateRead(Output):
    source: str
    source_id: int
    sent: int
    complaints: int
    rate: float
    level: Literal["ok", "warning", "pause"]


class EmailSettingsIn(Input):
    """The email channel's settings; a credential left out (or null) is kept, ``""`` removes it."""

    smtp_host: str = Field(default="", max_length=255)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = Field(default="", max_length=320)
    smtp_password: str | None = Field(default=None, max_length=1000)
    from_name: str = Field(default="", max_length=200)
    from_address: str = Field(default="", max_length=320)
    reply_to: str = Field(default="", max_length=320)
    postal_address: str = Field(default="", max_length=500)
    postal_url: str = Field(default="", max_length=1000)
    complaints_contact: str = Field(default="", max_length=500)
    dkim_domain: str = Field(default="", max_length=255)
    dkim_selector: str = Field(default="", max_length=63)
    dkim_private_key: str | None = Field(default=None, max_length=20_000)
    tracking: bool = True
    cap_count: int = Field(default=0, ge=0, le=1000, description="Marketing mails per customer per window (0: no cap).")
    cap_days: int = Field(default=7, ge=1, le=365)
    quiet_start: str = Field(default="", max_length=5, description="Start of quiet hours, HH:MM (customer's time).")
    quiet_end: str = Field(default="", max_length=5)


class DeliveryRulesIn(Input):
    """A channel's frequency cap and quiet hours (LINE's; email's are part of its settings)."""

    cap_count: int = Field(
        default=0, ge=0, le=1000, description="Marketing messages per customer per window (0: no cap)."
    )
    cap_days: int = Field(default=7, ge=1, le=365)
    quiet_start: str = Field(default="", max_length=5, description="Start of quiet hours, HH:MM (customer's time).")
    quiet_end: str = Field(default="", max_length=5)


class DeliveryRulesRead(DeliveryRulesIn, Output):
    channel: str


class EmailSettingsRead(Output):
    values: dict[str, Any]
    secrets_set: list[str]
    smtp: str | None = Field(description="Where mail goes now (saved server, else KIZUNA_SMTP_URL), no password.")
    public_url: str
