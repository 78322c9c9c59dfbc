"""Request and response shapes of the inquiry desk."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["new", "open", "pending", "resolved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Channel = Literal["web_form", "api", "email", "chat", "phone", "visit"]
Direction = Literal["in", "out", "note"]
# A chat message may be long, but the thread is for people: 100 KB is kept, anything longer is refused.
BODY_MAX = 100_000


class TranscriptLine(BaseModel):
    """One line of a conversation held before the ticket (the chat bot's hand-over)."""

    model_config = ConfigDict(extra="forbid")

    author: Literal["customer", "bot", "agent"]
    text: str = Field(max_length=BODY_MAX)
    at: dt.datetime | None = None


class InquiryCreate(BaseModel):
    """A new inquiry: who (a customer id, or an e-mail / phone / name to find or create one), what and how."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=BODY_MAX)
    channel: Channel = "api"
    customer_id: int | None = None
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    # A category id, or its name (either language).
    category: int | str | None = None
    priority: Priority = "normal"
    team_id: int | None = None
    transcript: list[TranscriptLine] = Field(default_factory=list, max_length=500)
    # Set by e-mail-in: the mail's own Message-ID and raw text, kept on the first message.
    email_message_id: str | None = Field(default=None, max_length=998)
    raw: str | None = None

    @model_validator(mode="after")
    def _someone(self) -> InquiryCreate:
        if self.customer_id is None and not (self.email or self.phone):
            raise ValueError("say who is asking: a customer_id, an email or a phone")
        return self


class InquiryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, min_length=1, max_length=300)
    status: Status | None = None
    priority: Priority | None = None
    category: int | str | None = None
    team_id: int | None = None
    version: int | None = None


class ReplyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=BODY_MAX)
    # Internal note (not sent to the customer).
    note: bool = False
    # The status the ticket takes after the reply (pending by default: waiting for the customer).
    status: Status | None = None


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    direction: Direction
    author_user_id: int | None
    author_label: str
    body: str
    email_message_id: str | None
    outgoing_message_id: int | None
    created_at: dt.datetime


class InquiryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    reference: str
    subject: str
    status: Status
    priority: Priority
    channel: Channel
    category_id: int | None
    customer_id: int | None
    team_id: int | None
    claimed_by: int | None
    claimed_at: dt.datetime | None
    reply_to: str | None
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    first_response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    overdue: bool
    # Waiting for the customer: the SLA clocks stop (since sla_paused_at); the due times above move forward by the
    # business time paused when the ticket leaves pending. sla_paused_seconds: business time paused so far (finished
    # spells); pending_seconds: wall-clock time spent pending so far (finished spells).
    sla_paused: bool = False
    sla_paused_at: dt.datetime | None = None
    sla_paused_seconds: int = 0
    pending_seconds: int = 0
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class InquiryDetail(InquiryRead):
    messages: list[MessageRead]


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    team_id: int | None = None
    active: bool = True


class CategoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    name_en: str | None
    team_id: int | None
    active: bool
    version: int


class MacroIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)
    category_id: int | None = None


class MacroRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    body: str
    category_id: int | None
    version: int


class EmailInResult(BaseModel):
    # None when an automatic mail matched no ticket and was dropped (``ignored``).
    inquiry_id: int | None
    message_id: int | None
    created: bool
    duplicate: bool = False
    # An auto-reply or a bounce: kept on its ticket as a system entry, or ignored when it matched none.
    automatic: Literal["auto_reply", "bounce"] | None = None
    ignored: bool = False


class ReportRow(BaseModel):
    key: str
    label: str
    tickets: int
    responded: int
    resolved: int
    median_first_response_minutes: float | None
    median_resolution_minutes: float | None
    # Elapsed time less the time waiting for the customer (pending).
    median_resolution_agent_minutes: float | None = None


class Report(BaseModel):
    by_agent: list[ReportRow]
    by_category: list[ReportRow]
