from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from kizuna.schemas import Email, FreeText, Input, Output, Text

# A chat message is what a person types into a small box; anything longer is refused whole (never cut).
MAX_MESSAGE_CHARS = 4000


class ChatStart(Input):
    language: Literal["ja", "en"] = "ja"
    email: Email | None = None
    name: Text | None = Field(default=None, max_length=200)


class ChatContact(Input):
    email: Email
    name: Text | None = Field(default=None, max_length=200)


class MessageIn(Input):
    text: FreeText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class HandOverIn(Input):
    reason: Literal["asked"] = "asked"


class SourceRead(Output):
    id: int
    title: str
    snippet: str
    url: str


class MessageRead(Output):
    id: int
    author: str
    text: str
    sources: list[SourceRead]
    created_at: dt.datetime


class ChatStarted(Output):
    id: str
    secret: str
    status: str
    messages: list[MessageRead]


class ChatState(Output):
    id: str
    status: str
    messages: list[MessageRead]


class ChatRead(Output):
    """A chat as agents see it."""

    id: int
    public_id: str
    status: str
    customer_id: int | None
    email: str | None
    name: str | None
    language: str
    site: str | None
    handover_reason: str | None
    handed_over_at: dt.datetime | None
    agent_user_id: int | None
    inquiry_id: int | None
    last_message_at: dt.datetime
    created_at: dt.datetime
    version: int


class AgentReply(Input):
    text: FreeText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class OriginIn(Input):
    origin: Text = Field(min_length=1, max_length=300)


class OriginRead(Output):
    id: int
    origin: str
