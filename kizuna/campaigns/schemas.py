"""Request and response shapes of the campaigns API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kizuna.schemas import Text


class Variant(BaseModel):
    """One arm of an A/B test: another subject, another template, or both."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    subject: str | None = Field(default=None, max_length=500)
    template_id: int | None = None


class ABTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variants: list[Variant] = Field(min_length=2, max_length=5)
    sample_percent: int = Field(default=20, ge=2, le=100, description="Share of the audience that takes the test.")
    metric: Literal["opened", "clicked"] = "opened"
    test_hours: float = Field(default=4, gt=0, le=24 * 14, description="How long the test runs before the winner.")

    @model_validator(mode="after")
    def _distinct_names(self) -> ABTest:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must differ")
        return self


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    channel: Literal["email", "line"] = "email"
    kind: Literal["marketing", "service"] = "marketing"
    segment_id: int
    template_id: int
    subject: str | None = Field(default=None, max_length=500, description="Overrides the template's subject.")
    ab_test: ABTest | None = None


class CampaignUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    segment_id: int | None = None
    template_id: int | None = None
    subject: str | None = Field(default=None, max_length=500)
    ab_test: ABTest | None = None
    clear_ab_test: bool = False


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: dt.datetime | None = Field(default=None, description="When to send (with a time zone); empty: now.")


class CampaignRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    channel: str
    kind: str
    segment_id: int | None
    template_id: int | None
    content: dict[str, Any]
    ab_test: dict[str, Any]
    status: str
    scheduled_at: dt.datetime | None
    launched_at: dt.datetime | None
    test_ends_at: dt.datetime | None
    winner: str | None
    decision: dict[str, Any]
    audience: int
    paused_reason: str | None
    finished_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime


class VariantStats(BaseModel):
    variant: str
    messages: int
    queued: int
    held: int
    sent: int
    skipped: int
    failed: int
    opened: int
    clicked: int
    unsubscribed: int
    bounced: int
    complained: int
    converted: int
    open_rate: float | None
    click_rate: float | None
    conversion_rate: float | None


class CampaignStats(BaseModel):
    campaign_id: int
    status: str
    total: VariantStats
    variants: list[VariantStats]
    skipped_reasons: dict[str, int]
    complaint_rate: float | None
    complaint_warning: bool
    test: dict[str, Any]
    conversion_days: int
