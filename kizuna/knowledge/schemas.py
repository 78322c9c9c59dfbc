from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from kizuna.schemas import FreeText, Input, Output, Text

Language = Literal["ja", "en"]


class ArticleCreate(Input):
    title: Text = Field(min_length=1, max_length=300)
    body: FreeText = Field(min_length=1, max_length=20_000)
    language: Language
    tags: list[Text] = Field(default_factory=list, max_length=20)
    published: bool = True


class ArticleUpdate(Input):
    title: Text | None = Field(default=None, min_length=1, max_length=300)
    body: FreeText | None = Field(default=None, min_length=1, max_length=20_000)
    language: Language | None = None
    tags: list[Text] | None = Field(default=None, max_length=20)
    published: bool | None = None
    version: int | None = None


class ArticleRead(Output):
    id: int
    title: str
    body: str
    language: str
    tags: list[str]
    published: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class AnswerSource(Output):
    """An article the bot used: shown under its answer."""

    id: int
    title: str
    snippet: str
    url: str
    confidence: float
