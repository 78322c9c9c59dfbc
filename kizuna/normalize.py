"""Normalisation of personal data on the way in: NFKC text, e-mails, E.164 phones, katakana readings.

Shared by every domain that takes such values (customers, users, catalogue filters, imports, the UI's phone
formatting), so it lives at the top of the package rather than inside one of them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

import jaconv
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from kizuna.errors import ValidationError

# phonenumbers recompiles its metadata patterns through re's small cache on every validation; its own cache
# keeps them (a bounded set, fixed by the metadata) and saves about a sixth of the cost of checking a number.
phonenumbers.re_util.enable_pattern_cache()

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
    # str.split() splits on exactly what \s matches (str.isspace), and costs a third of the regex per field.
    text = " ".join(unicodedata.normalize("NFKC", str(value)).split())
    if "\x00" in text:
        # PostgreSQL cannot store NUL; refusing it here makes it a per-row error, not a failed batch.
        raise ValidationError("text contains a NUL character", key="error.text_nul")
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
        raise ValidationError(
            f"invalid email '{text}': {exc}", field=field, key="error.email_invalid", params={"value": text}
        ) from exc
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
        digits = text.replace("-", "").replace(" ", "")
        # Imported phones are nearly all unique, so the cache below rarely hits; this skips the parse instead.
        e164 = _fast_phone(digits, region)
        if e164 is None:
            e164 = _plain_phone(digits, region)
        if e164 is not None:
            return e164
    return _parse_phone(text, region, field)


# phonenumbers' own limits (phonenumberutil._MAX_LENGTH_FOR_NSN): parse() refuses longer national numbers, and
# bounding the length also keeps int() away from its digit limit on absurd input.
_MAX_NSN_LENGTH = 17


class _RegionRules(NamedTuple):
    """What phonenumbers.parse() consults for a digits-only number in a region, taken from its metadata."""

    country_code: int
    calling_code: str
    sole_region: bool
    # None when national-form input must always take the full parse.
    national_prefix: str | None
    national_prefix_for_parsing: re.Pattern[str] | None
    international_prefix: re.Pattern[str] | None
    # '+<calling code>' input is read with the metadata of the code's main region, not the one passed in.
    international_form: bool
    main_national_prefix_for_parsing: re.Pattern[str] | None


@lru_cache(maxsize=256)
def _region_rules(region: str) -> _RegionRules | None:
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return None
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or not metadata.country_code:
        return None
    country_code = metadata.country_code
    calling_code = str(country_code)
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())

    national_prefix = metadata.national_prefix or None
    for_parsing = metadata.national_prefix_for_parsing or None
    # parse() strips nothing without a national_prefix_for_parsing, so the prefix must stay part of the number.
    # A transform rule with no group to test makes parse() fail outright; leave that to it.
    if for_parsing is None or (metadata.national_prefix_transform_rule and re.compile(for_parsing).groups == 0):
        national_prefix = None

    main_region = phonenumbers.region_code_for_country_code(country_code)
    main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region)
    # parse() takes the first known calling code that prefixes the digits after '+'.
    shorter_code_known = any(
        int(calling_code[:size]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for size in range(1, len(calling_code))
    )
    main_for_parsing = main.national_prefix_for_parsing if main is not None else None
    return _RegionRules(
        country_code=country_code,
        calling_code=calling_code,
        sole_region=tuple(regions) == (region,),
        national_prefix=national_prefix,
        national_prefix_for_parsing=re.compile(for_parsing) if national_prefix is not None else None,
        international_prefix=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        international_form=main is not None and not shorter_code_known,
        main_national_prefix_for_parsing=re.compile(main_for_parsing) if main_for_parsing else None,
    )


def _fast_phone(digits: str, region: str) -> str | None:
    """The E.164 form phonenumbers would give ``digits`` (ASCII digits, maybe a leading +), or None if unsure.

    Covers the two shapes almost every stored number has: national form behind the region's plain national
    prefix (090..., 03...) and international form with the region's own calling code (+8190...). For those,
    parse() only strips the prefix and is_valid_number() decides, so the number is built directly and validated;
    every input whose parse could do anything else (IDD, carrier codes, prefix transforms, leading zeros, another
    country's code) returns None and goes through the full parse, which keeps its results and messages.
    """
    rules = _region_rules(region)
    if rules is None:
        return None
    if digits.startswith("+"):
        if not rules.international_form or not digits.startswith(rules.calling_code, 1):
            return None
        rest = digits[len(rules.calling_code) + 1 :]
        if not _plain_significant_number(rest):
            return None
        # Here parse() would try to strip a national prefix (+81 0 90...), with its own rules.
        for_parsing = rules.main_national_prefix_for_parsing
        if for_parsing is not None and for_parsing.match(rest) is not None:
            return None
        number = phonenumbers.PhoneNumber(country_code=rules.country_code, national_number=int(rest))
        return _e164(rules, rest) if phonenumbers.is_valid_number(number) else None

    prefix = rules.national_prefix
    if prefix is None or rules.national_prefix_for_parsing is None or not digits.startswith(prefix):
        return None
    # Digits that begin with the region's IDD (010 in Japan) or calling code may be read as international by parse().
    if digits.startswith(rules.calling_code):
        return None
    if rules.international_prefix is not None and rules.international_prefix.match(digits) is not None:
        return None
    # Only a bare national prefix is simply dropped; a longer match or a captured group means a carrier code or
    # a transform rule (Japan's 0002..., 003768...).
    match = rules.national_prefix_for_parsing.match(digits)
    if match is None or match.end() != len(prefix) or match.lastindex is not None:
        return None
    rest = digits[len(prefix) :]
    if not _plain_significant_number(rest):
        return None
    number = phonenumbers.PhoneNumber(country_code=rules.country_code, national_number=int(rest))
    # Valid for this very region means rest fits the region's general pattern and lengths, which is what makes
    # parse() keep the stripped digits; a number of a region sharing the code (GB/GG) might not, so it falls back.
    if not phonenumbers.is_valid_number_for_region(number, region):
        return None
    if not rules.sole_region and not phonenumbers.is_valid_number(number):
        return None
    return _e164(rules, rest)


def _plain_significant_number(rest: str) -> bool:
    # A leading zero would set italian_leading_zero in parse(), and it refuses national numbers outside 2-17 digits.
    return 2 <= len(rest) <= _MAX_NSN_LENGTH and rest[0] != "0" and rest.isascii() and rest.isdigit()


def _e164(rules: _RegionRules, rest: str) -> str:
    # What format_number(..., E164) gives for a number with a known calling code, no extension and no leading
    # zero; writing it directly saves about 0.3 µs a number.
    return f"+{rules.calling_code}{rest}"


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
        raise ValidationError(
            f"invalid phone number '{text}': {exc}", field=field, key="error.phone_invalid", params={"value": text}
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(
            f"invalid phone number '{text}' for region {region}",
            field=field,
            key="error.phone_invalid",
            params={"value": text},
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_kana(value: object | None) -> str | None:
    """A reading in full-width katakana, whether it came as hiragana or half-width kana."""
    text = normalize_text(value)
    return jaconv.hira2kata(text) if text else None


def is_japanese(text: str | None) -> bool:
    return bool(text and _HAS_JAPANESE.search(text))


def split_full_name(text: str) -> tuple[str | None, str | None]:
    """(family, given) from a whole name: Japanese names read family-first (山田 太郎), others given-first.

    A name without a space cannot be split reliably (山田太郎 could be 山田/太郎 or 山/田太郎), so it is kept
    whole as the family name; nothing is lost and the full name reads the same.
    """
    parts = unicodedata.normalize("NFKC", text).split()
    if not parts:
        return None, None
    if len(parts) == 1:
        return parts[0], None
    if is_japanese(text):
        return parts[0], " ".join(parts[1:])
    return parts[-1], " ".join(parts[:-1])


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
