"""Normalisation of personal data on the way in: NFKC text, e-mails, E.164 phones, katakana readings."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jaconv
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from kizuna.errors import ValidationError

_SPACES = re.compile(r"\s+")
# An unquoted ASCII local part (RFC 5322 dot-atom: atext runs separated by single dots), the subset that
# email_validator returns unchanged; it is also what it matches first (rfc_constants.DOT_ATOM_TEXT).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LOCAL_MAX = 64
_EMAIL_MAX_BYTES = 254
# Phones written with only digits, spaces and hyphens (and maybe a leading +) share a cache entry.
_PLAIN_PHONE = re.compile(r"\+?[0-9][0-9 \-]*")
_HAS_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def normalize_text(value: object | None) -> str | None:
    """NFKC (full-width letters/digits to half-width, half-width kana to full-width), trimmed, single-spaced."""
    if value is None:
        return None
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", str(value))).strip()
    if "\x00" in text:
        # PostgreSQL cannot store NUL; refusing it here makes it a per-row error, not a failed batch.
        raise ValidationError("text contains a NUL character")
    return text or None


def normalize_email(value: object | None, *, field: str = "email") -> str | None:
    """A validated, case-folded address, or None for an empty value; raises ValidationError otherwise.

    Addresses are judged by ``email_validator``. Its per-address cost is almost all in the domain check
    (IDNA, special-use names), so the common shape (a plain ASCII dot-atom before a single @) validates the
    domain once per domain; every other address, and every one that fails, goes through the full check.
    """
    text = normalize_text(value)
    if text is None:
        return None
    fast = _plain_email(text)
    if fast is not None:
        return fast
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError(f"invalid email '{text}': {exc}", field=field) from exc
    return result.normalized.casefold()


def _plain_email(text: str) -> str | None:
    """The normalised address when ``text`` is a plain dot-atom with a valid domain; None to use the full check.

    What ``validate_email`` does to such an address: keeps the local part as it is, splits at the only @,
    normalises the domain (which depends on the domain alone) and checks three lengths in UTF-8 bytes.
    """
    local, at, domain = text.partition("@")
    if not at or len(local) > _LOCAL_MAX or not local.isascii() or _DOT_ATOM.fullmatch(local) is None:
        return None
    checked = _checked_domain(domain)
    if checked is None:
        return None
    unicode_domain, ascii_domain = checked
    normalized = f"{local}@{unicode_domain}"
    for address in (text, normalized, f"{local}@{ascii_domain}"):
        if len(address.encode()) > _EMAIL_MAX_BYTES:
            return None
    return normalized.casefold()


@lru_cache(maxsize=4096)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    """(normalised domain, its IDNA ASCII form) as email_validator sees it after a valid local part, or None."""
    try:
        result = validate_email(f"x@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


def normalize_phone(value: object | None, *, region: str = "JP", field: str = "phone") -> str | None:
    """The number in E.164 (``+819012345678``); raises ValidationError when it is not a valid number."""
    text = normalize_text(value)
    if text is None:
        return None
    # phonenumbers ignores spaces and hyphens between digits, so 090-1234-5678 and 09012345678 share an entry.
    if _PLAIN_PHONE.fullmatch(text) is not None:
        e164 = _plain_phone(text.replace("-", "").replace(" ", ""), region)
        if e164 is not None:
            return e164
    return _parse_phone(text, region, field)


@lru_cache(maxsize=65536)
def _plain_phone(digits: str, region: str) -> str | None:
    try:
        return _parse_phone(digits, region, "phone")
    except ValidationError:
        return None


def _parse_phone(text: str, region: str, field: str) -> str:
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
