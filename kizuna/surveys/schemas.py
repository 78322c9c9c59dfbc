"""Request and response shapes of the surveys API."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kizuna.schemas import FreeText, Text

Breakdown = Literal["month", "segment", "touchpoint", "owner"]


class SurveyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    question_ja: FreeText = Field(max_length=2000)
    question_en: FreeText = Field(max_length=2000)
    touchpoint: Text = Field(default="", max_length=64, description="e.g. purchase, support, onboarding")
    active: bool = True
    link_days: int = Field(default=60, ge=1, le=730, description="How long a sent link stays valid.")


class SurveyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    question_ja: FreeText | None = Field(default=None, max_length=2000)
    question_en: FreeText | None = Field(default=None, max_length=2000)
    touchpoint: Text | None = Field(default=None, max_length=64)
    active: bool | None = None
    link_days: int | None = Field(default=None, ge=1, le=730)
    version: int = Field(description="The version read; a survey changed since refuses the edit (409).")


class SurveyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    question_ja: str
    question_en: str
    touchpoint: str
    active: bool
    link_days: int
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ResponseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    survey_id: int
    customer_id: int
    score: int
    category: str
    comment: str
    touchpoint: str
    source: str
    source_id: int | None
    send_key: str
    answered_at: dt.datetime
    updated_at: dt.datetime
    answers: int


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int
    send_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Your own key for this send (e.g. your message id): the same key gives the same answer "
        "record. Left out, a new key is made, so each call gives links of their own.",
    )


class ScoreLink(BaseModel):
    score: int
    url: str


class LinksRead(BaseModel):
    survey_id: int
    customer_id: int
    send_key: str
    expires_at: dt.datetime
    links: list[ScoreLink]


class AnswerIn(BaseModel):
    """What the survey page posts."""

    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=0, le=10)
    comment: str = Field(default="", max_length=5000)


class NPSRow(BaseModel):
    key: str
    label: str
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None = Field(description="% promoters - % detractors, -100..100; none without answers")


class NPSReport(BaseModel):
    survey_id: int
    by: Breakdown
    total: NPSRow
    rows: list[NPSRow]
