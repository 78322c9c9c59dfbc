"""Parsing the cell values spreadsheets and shop systems write: Japanese dates, yen amounts, はい/いいえ flags.

Each parser takes the raw cell text and returns a typed value or raises ``CellError`` (a ``ValueError``) with a
message a user can act on and the catalog key of its translation; the importer adds the field name and line.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from kizuna.config import get_settings

_DATE = re.compile(
    r"^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:(?:\s+|T|\s*\(.\)\s*)(?P<H>\d{1,2})\s*[:時]\s*(?P<M>\d{1,2})\s*分?"
    r"(?:\s*[:]?\s*(?P<S>\d{1,2})(?P<f>\.\d{1,6})?\s*秒?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)
_TRUE = frozenset(
    {"true", "t", "1", "yes", "y", "はい", "有", "あり", "○", "◯", "許可", "同意", "希望", "希望する", "on"}
)
_FALSE = frozenset({"false", "f", "0", "no", "n", "いいえ", "無", "なし", "×", "拒否", "不可", "希望しない", "off"})
_TAG_SEPARATORS = re.compile(r"[,;、;|]")


class CellError(ValueError):
    """A cell that is not the value its column holds: English message, catalog ``key`` and its ``params``."""

    def __init__(self, message: str, key: str, **params: Any) -> None:
        super().__init__(message)
        self.key = key
        self.params = params


def nfkc(raw: object) -> str:
    return unicodedata.normalize("NFKC", str(raw)).strip()


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_datetime(raw: object) -> dt.datetime:
    """An aware UTC datetime from ISO 8601, ``2024/1/5 13:00`` or ``2024年1月5日 13時00分``.

    A value without an offset is read in ``settings.default_timezone`` (Asia/Tokyo by default); a bare date
    means midnight there.
    """
    text = nfkc(raw)
    match = _DATE.match(text)
    if match is None:
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CellError(
                f"'{text}' is not a date and time (use 2024-01-05 13:00 or 2024/1/5 13:00)",
                "error.import_not_datetime",
                value=text,
            ) from None
    else:
        parts = match.groupdict()
        try:
            value = dt.datetime(
                int(parts["y"]),
                int(parts["m"]),
                int(parts["d"]),
                int(parts["H"] or 0),
                int(parts["M"] or 0),
                int(parts["S"] or 0),
                int(round(float(parts["f"]) * 1_000_000)) if parts["f"] else 0,
            )
        except ValueError as exc:
            raise CellError(f"'{text}' is not a valid date: {exc}", "error.import_date_invalid", value=text) from None
        if parts["tz"]:
            value = value.replace(tzinfo=dt.datetime.fromisoformat("2000-01-01T00:00" + _offset(parts["tz"])).tzinfo)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(get_settings().default_timezone))
    return value.astimezone(dt.UTC)


def _offset(tz: str) -> str:
    if tz == "Z":
        return "+00:00"
    return tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"


def parse_date(raw: object) -> dt.date:
    """A calendar date from ``2024-01-05``, ``2024/1/5`` or ``2024年1月5日``.

    A midnight time part (``1985-04-02 00:00:00``, as EC-CUBE exports birthdays) says nothing more and is
    accepted; any other time of day is refused, since which date it means would depend on a time zone.
    """
    text = nfkc(raw)
    match = _DATE.match(text)
    midnight = match is not None and not any(int(match[p] or 0) for p in ("H", "M", "S")) and not match["tz"]
    if match is None:
        raise CellError(
            f"'{text}' is not a date (use 2024-01-05, 2024/1/5 or 2024年1月5日)", "error.import_not_date", value=text
        )
    if (match["H"] is not None and not midnight) or (match["f"] and float(match["f"])):
        raise CellError(
            f"'{text}' has a time of day where a date is expected (use 2024-01-05)",
            "error.import_date_has_time",
            value=text,
        )
    try:
        return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError as exc:
        raise CellError(f"'{text}' is not a valid date: {exc}", "error.import_date_invalid", value=text) from None


def parse_decimal(raw: object) -> Decimal:
    """An exact amount from ``1,980``, ``¥1,980``, ``1980円`` or ``19.80``."""
    text = nfkc(raw).replace(",", "").replace("¥", "").replace("円", "").replace("\\", "").strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CellError(f"'{nfkc(raw)}' is not an amount", "error.import_not_amount", value=nfkc(raw)) from None
    if not value.is_finite():
        raise CellError(f"'{nfkc(raw)}' is not an amount", "error.import_not_amount", value=nfkc(raw))
    return value


def parse_int(raw: object) -> int:
    text = nfkc(raw).replace(",", "")
    try:
        return int(text)
    except ValueError:
        raise CellError(f"'{text}' is not a whole number", "error.import_not_whole_number", value=text) from None


def parse_bool(raw: object) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``はい/いいえ``, ``○/×`` ..."""
    text = nfkc(raw).casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(
        f"'{nfkc(raw)}' is not yes or no (use true/false, 1/0 or はい/いいえ)",
        "error.import_not_yes_no",
        value=nfkc(raw),
    )


def split_tags(raw: object) -> list[str]:
    """Tag names from a cell separated by commas, semicolons or 、."""
    return [t.strip() for t in _TAG_SEPARATORS.split(nfkc(raw)) if t.strip()]
