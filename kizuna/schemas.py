"""Pydantic building blocks shared by every domain's schemas."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic_core import PydanticCustomError

from kizuna.config import get_settings
from kizuna.errors import ValidationError as KizunaValidationError
from kizuna.normalize import normalize_email, normalize_kana, normalize_phone, normalize_text


class Input(BaseModel):
    """Request bodies: unknown fields are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # Lone surrogates decode from JSON escapes but cannot be stored as UTF-8 by either database.
        where = _bad_unicode(data, "")
        if where is not None:
            raise PydanticCustomError(
                "invalid_unicode",
                "{field} contains invalid Unicode (a lone surrogate or a NUL character)",
                {"field": where or "body"},
            )
        return data


def _bad_unicode(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _bad_unicode(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
        if isinstance(key, str) and _bad_unicode(key, "") is not None:
            return path or "body"
    return None


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _text(value: Any) -> Any:
    try:
        return normalize_text(value) if isinstance(value, str) else value
    except KizunaValidationError as exc:
        raise ValueError(exc.message) from exc


def _email(value: Any) -> Any:
    try:
        return normalize_email(value)
    except KizunaValidationError as exc:
        raise ValueError(exc.message) from exc


def _phone(value: Any) -> Any:
    try:
        return normalize_phone(value, region=get_settings().default_region)
    except KizunaValidationError as exc:
        raise ValueError(exc.message) from exc


def _kana(value: Any) -> Any:
    try:
        return normalize_kana(value) if isinstance(value, str) else value
    except KizunaValidationError as exc:
        raise ValueError(exc.message) from exc


def _aware(value: Any) -> Any:
    # Timestamps without an offset are read in the configured local time zone, then kept in UTC.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        from zoneinfo import ZoneInfo

        value = value.replace(tzinfo=ZoneInfo(get_settings().default_timezone))
    return value.astimezone(dt.UTC) if isinstance(value, dt.datetime) else value


def _currency(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"'{value}' is not a three-letter ISO 4217 currency code")
    return value


Text = Annotated[str, BeforeValidator(_text)]
Email = Annotated[str, BeforeValidator(_email)]
Phone = Annotated[str, BeforeValidator(_phone)]
Kana = Annotated[str, BeforeValidator(_kana)]
UTCTime = Annotated[dt.datetime, AfterValidator(_aware)]
Currency = Annotated[str, BeforeValidator(_currency)]
# Money travels as a decimal string so no client rounds it through a float.
MoneyOut = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")]
MoneyIn = Annotated[Decimal, Field(max_digits=18, decimal_places=2, ge=-(10**15), le=10**15)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page.")
