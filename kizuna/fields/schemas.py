"""Request and response shapes of custom field definitions (the API's and the admin page's)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from kizuna.schemas import FreeText, Input, Output, Text

Entity = Literal["customer", "company", "deal"]
FieldType = Literal["text", "number", "date", "choice", "multi_choice", "url", "user"]
# Lower-case ASCII, starting with a letter: safe as a JSON key on both databases and in a CSV header.
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class CustomFieldCreate(Input):
    entity: Entity
    key: str = Field(pattern=KEY_PATTERN, description="The key in attributes, addressed as attributes.<key>.")
    type: FieldType
    label: Text = Field(min_length=1, max_length=200)
    label_en: Text | None = Field(default=None, max_length=200)
    required: bool = False
    choices: list[Text] = Field(default_factory=list, max_length=200, description="choice / multi_choice only.")
    min_value: float | None = Field(default=None, description="number only.")
    max_value: float | None = Field(default=None, description="number only.")
    max_length: int | None = Field(default=None, ge=1, le=10_000, description="text only.")
    position: int = Field(default=0, ge=0, le=10_000)
    help_text: FreeText | None = Field(default=None, max_length=500)

    @field_validator("key")
    @classmethod
    def _no_double_underscore(cls, value: str) -> str:
        # ``attributes.<key>__gte``: a list filter's operator follows the first double underscore.
        if "__" in value:
            raise ValueError("a key cannot contain two underscores in a row")
        return value

    @model_validator(mode="after")
    def _rules_fit_type(self) -> CustomFieldCreate:
        check_rules(self.type, self.choices, self.min_value, self.max_value, self.max_length)
        return self


class CustomFieldUpdate(Input):
    """What may change after creation; ``entity``, ``key`` and ``type`` are fixed (stored values keep meaning)."""

    label: Text | None = Field(default=None, min_length=1, max_length=200)
    label_en: Text | None = Field(default=None, max_length=200)
    required: bool | None = None
    choices: list[Text] | None = Field(default=None, max_length=200)
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = Field(default=None, ge=1, le=10_000)
    position: int | None = Field(default=None, ge=0, le=10_000)
    help_text: FreeText | None = Field(default=None, max_length=500)
    version: int | None = None


class CustomFieldRead(Output):
    id: int
    entity: str
    key: str
    type: str
    label: str
    label_en: str | None
    required: bool
    choices: list[str]
    min_value: float | None
    max_value: float | None
    max_length: int | None
    position: int
    help_text: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class RuleError(ValueError):
    """A rule that does not fit the field's type; ``field`` names the rule, so a form shows it beside its box."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_rules(
    kind: str, choices: list[str], min_value: float | None, max_value: float | None, max_length: int | None
) -> None:
    """The validation rules make sense for the type (raises RuleError naming the rule)."""
    if kind in ("choice", "multi_choice"):
        if not choices:
            raise RuleError(f"a {kind} field needs at least one choice", "choices")
        if len(set(choices)) != len(choices):
            raise RuleError("choices must be different from each other", "choices")
    elif choices:
        raise RuleError(f"choices apply to choice and multi_choice fields, not {kind}", "choices")
    if kind != "number" and (min_value is not None or max_value is not None):
        raise RuleError(f"min_value / max_value apply to number fields, not {kind}", "min_value")
    if min_value is not None and max_value is not None and min_value > max_value:
        raise RuleError("min_value is larger than max_value", "min_value")
    if kind not in ("text", "url") and max_length is not None:
        raise RuleError(f"max_length applies to text and url fields, not {kind}", "max_length")
