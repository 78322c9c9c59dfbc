"""Pydantic building blocks shared by every domain's schemas."""

from __future__ import annotations

import datetime as dt
import json
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
        # Depth first: the walk below recurses, and JSON nested hundreds deep is stored but never serialised again.
        limit = get_settings().json_max_depth
        if json_depth(data, limit) > limit:
            raise PydanticCustomError(
                "json_too_deep", "the request nests JSON deeper than {limit} levels", {"limit": limit}
            )
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


def json_depth(value: Any, limit: int) -> int:
    """How deep ``value`` nests (a scalar is 0, ``{}`` is 1), counted without recursion up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _bounded_json(value: Any) -> Any:
    if value is None:
        return value
    settings = get_settings()
    if json_depth(value, settings.json_max_depth) > settings.json_max_depth:
        raise ValueError(f"nested deeper than {settings.json_max_depth} levels")
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
    if size > settings.json_max_bytes:
        raise ValueError(f"{size} bytes as JSON; at most {settings.json_max_bytes} are accepted")
    return value


# JSON read back is shown at most this deep. Limits on input came late: rows written before may nest deeper,
# and the serialiser refuses depth 255, so a read clips instead of failing (the stored row stays as it was).
READ_MAX_DEPTH = 64
CLIPPED = "…(nested too deep to show)"


def clip_json(value: Any, depth: int = READ_MAX_DEPTH) -> Any:
    """``value`` with anything nested deeper than ``depth`` replaced by a marker string."""
    if not isinstance(value, (dict, list, tuple)):
        return value
    if json_depth(value, depth) <= depth:
        return value
    return _clip(value, depth)


def _clip(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        return {k: _clip(v, depth - 1) for k, v in value.items()} if depth > 0 else CLIPPED
    if isinstance(value, (list, tuple)):
        return [_clip(v, depth - 1) for v in value] if depth > 0 else CLIPPED
    return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _as_pydantic(exc: KizunaValidationError) -> PydanticCustomError:
    """The domain error as a typed Pydantic error: the API keeps its message, the UI translates by its key."""
    kind = (exc.key or "error.value_error").removeprefix("error.")
    return PydanticCustomError(kind, "{message}", {"message": exc.message, **exc.params})


def _text(value: Any) -> Any:
    try:
        return normalize_text(value) if isinstance(value, str) else value
    except KizunaValidationError as exc:
        raise _as_pydantic(exc) from exc


def _free_text(value: Any) -> Any:
    """Text a person wrote (a note, a consent's evidence): kept as written, line breaks and all, only trimmed.

    No NFKC: ``①㈱ｶﾀｶﾅ！`` is what the person typed and stays so. Blank text is refused with the ``blank``
    error (spaces alone are not a note); NUL and lone surrogates cannot be stored by the databases.
    """
    if not isinstance(value, str):
        return value
    if _bad_unicode(value, "") is not None:
        raise PydanticCustomError("invalid_unicode", "the text contains invalid Unicode (a lone surrogate or a NUL)")
    text = value.strip()
    if not text:
        raise PydanticCustomError("blank", "must not be blank (spaces alone are not enough)")
    return text


def _free_text_or_none(value: Any) -> Any:
    # An optional free text left blank means "none given", as an empty form field does.
    if isinstance(value, str) and not value.strip():
        return None
    return _free_text(value)


def _email(value: Any) -> Any:
    try:
        return normalize_email(value)
    except KizunaValidationError as exc:
        raise _as_pydantic(exc) from exc


def _phone(value: Any) -> Any:
    try:
        return normalize_phone(value, region=get_settings().default_region)
    except KizunaValidationError as exc:
        raise _as_pydantic(exc) from exc


def _kana(value: Any) -> Any:
    try:
        return normalize_kana(value) if isinstance(value, str) else value
    except KizunaValidationError as exc:
        raise _as_pydantic(exc) from exc


def _aware(value: Any) -> Any:
    # Timestamps without an offset are read in the configured local time zone, then kept in UTC.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        from zoneinfo import ZoneInfo

        value = value.replace(tzinfo=ZoneInfo(get_settings().default_timezone))
    if not isinstance(value, dt.datetime):
        return value
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 has no UTC equivalent
        raise ValueError("this time cannot be converted to UTC (outside the calendar's range)") from exc


def _currency(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().upper()
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"'{value}' is not a three-letter ISO 4217 currency code")
    return value


Text = Annotated[str, BeforeValidator(_text)]
# Free text a person wrote: stored as written (trimmed), never normalised; see ``_free_text``.
FreeText = Annotated[str, BeforeValidator(_free_text)]
OptionalFreeText = Annotated[str | None, BeforeValidator(_free_text_or_none)]
Email = Annotated[str, BeforeValidator(_email)]
Phone = Annotated[str, BeforeValidator(_phone)]
Kana = Annotated[str, BeforeValidator(_kana)]
UTCTime = Annotated[dt.datetime, AfterValidator(_aware)]
Currency = Annotated[str, BeforeValidator(_currency)]
# Money travels as a decimal string so no client rounds it through a float.
MoneyOut = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")]
# Free-form JSON objects a client writes (customer attributes, event properties): bounded in depth and size.
FreeJSON = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
# Free-form JSON as stored: clipped before validation so that no stored row can break a read.
StoredJSON = Annotated[dict[str, Any], BeforeValidator(clip_json)]
# The range of Numeric(18, 2), the same on both databases: up to 16 digits before the point, 2 after.
MoneyIn = Annotated[Decimal, Field(max_digits=18, decimal_places=2, allow_inf_nan=False)]


def check_money(value: Decimal, what: str) -> Decimal:
    """``value`` if it fits the money columns; a computed amount (quantity × price, a total) may not."""
    from kizuna.db import MONEY_LIMIT

    if abs(value) >= MONEY_LIMIT:
        raise PydanticCustomError(
            "money_too_large",
            "{what} {value} is beyond the largest amount stored (less than 10^16)",
            {"what": what, "value": str(value)},
        )
    return value


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page.")
