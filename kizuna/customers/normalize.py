"""Normalisation of personal data on the way in: NFKC text, e-mails, E.164 phones, katakana readings."""

from __future__ import annotations

import re
import unicodedata

import jaconv
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from kizuna.errors import ValidationError

_SPACES = re.compile(r"\s+")
_HAS_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def normalize_text(value: object | None) -> str | None:
    """NFKC (full-width letters/digits to half-width, half-width kana to full-width), trimmed, single-spaced."""
    if value is None:
        return None
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(value))).strip()
    return text or None


def normalize_email(value: object | None, *, field: str = "email") -> str | None:
    """A validated, case-folded address, or None for an empty value; raises ValidationError otherwise."""
    text = normalize_text(value)
    if text is None:
        return None
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"invalid email '{text}': {exc}", field=field) from exc
    return result.normalized.casefold()


def normalize_phone(value: object | None, *, region: str = "JP", field: str = "phone") -> str | None:
    """The number in E.164 (``+819012345678``); raises ValidationError when it is not a valid number."""
    text = normalize_text(value)
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(f"invalid phone number '{text}': {exc}", field=field) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(f"invalid phone number '{text}' for region {region}", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_kana(value: object | None) -> str | None:
    """A reading in full-width katakana, whether it came as hiragana or half-width kana."""
    text = normalize_text(value)
    return jaconv.hira2kata(text) if text else None


def is_japanese(text: str | None) -> bool:
    return bool(text and _HAS_JAPANESE.search(text))


def full_name(family: str | None, given: str | None) -> str:
    """Japanese names read family-first without a space (山田太郎 → 山田 太郎 for readability); others given-first."""
    family, given = family or "", given or ""
    if is_japanese(family) or is_japanese(given):
        return f"{family} {given}".strip()
    return f"{given} {family}".strip()


def format_phone_national(e164: str | None) -> str | None:
    if not e164:
        return None
    number = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
