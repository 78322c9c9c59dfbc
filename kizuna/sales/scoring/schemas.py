"""Request and response shapes of scoring: rules, trained models, and the call-first list."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field

from kizuna.schemas import Input, MoneyOut, Output, Text, UTCTime

Subject = Literal["deal", "lead"]
RuleOp = Literal[">=", ">", "<=", "<", "=", "per"]


class RuleIn(Input):
    subject: Subject
    feature: Text = Field(min_length=1, max_length=64, description="A feature name (see GET /scoring/rules).")
    op: RuleOp
    value: Text = Field(default="", max_length=200, description="Compared value; empty for 'per'.")
    points: int = Field(ge=-100, le=100)


class RulesIn(Input):
    rules: list[RuleIn] = Field(max_length=100, description="Every rule, in order; replaces the current ones.")


class RuleRead(Output):
    id: int
    subject: Subject
    feature: str
    op: RuleOp
    value: str
    points: int
    text: str = ""


class RulesRead(Output):
    rules: list[RuleRead]
    features: dict[str, list[str]] = Field(description="The features a rule may test, per subject.")


class CalibrationRow(Output):
    bucket: str
    predicted: float
    observed: float
    count: int


class ModelRead(Output):
    version: int
    subject: Subject
    trained_at: UTCTime
    trained_by: str
    cv_auc: float
    rows: int
    positives: int
    calibration: list[CalibrationRow]
    features: list[str]


class TrainResult(Output):
    version: int
    models: list[ModelRead]
    skipped: dict[str, str] = Field(default_factory=dict, description="Subjects not trained, and why.")
    scored: dict[str, int] = Field(default_factory=dict, description="Open deals and leads scored, per subject.")


class Factor(Output):
    feature: str
    value: Any = None
    contribution: float | None = Field(default=None, description="Model: the push in log-odds (+ raises).")
    points: int | None = Field(default=None, description="Rules: the points the rule gave.")
    rule: str | None = None


class CallFirstItem(Output):
    subject: Subject
    deal_id: int | None
    customer_id: int | None
    name: str
    owner_id: int | None
    probability: float
    score: int = Field(description="The probability as 0–100.")
    value: MoneyOut
    currency: str
    rank_value: float = Field(description="probability × value: the list's order.")
    method: Literal["model", "rules"]
    model_version: int | None
    factors: list[Factor]
    scored_at: dt.datetime


class CallFirstPage(Output):
    items: list[CallFirstItem]


def model_read(model: Any) -> dict[str, Any]:
    """A stored ``ScoringModel`` as ``ModelRead``'s fields."""
    m = model.metrics
    return {
        "version": model.version,
        "subject": model.subject,
        "trained_at": model.trained_at,
        "trained_by": model.trained_by,
        "cv_auc": m.get("cv_auc", 0.0),
        "rows": m.get("rows", 0),
        "positives": m.get("positives", 0),
        "calibration": m.get("calibration", []),
        "features": model.features,
    }
