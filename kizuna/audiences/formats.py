"""Each ad platform's file format: which columns, how each value is normalised, what is hashed.

The rules follow the platforms' own pages, pinned in docs/audiences.md (URL and the date they were read); the
tests reproduce those pages' worked examples. In short:

* **Google Ads Customer Match** (CSV upload; Data Manager API "Format user data" rules): ``Email``, ``Phone``,
  ``First Name``, ``Last Name`` are SHA-256 hex of the normalised value; ``Country`` (ISO 3166-1 alpha-2) and
  ``Zip`` stay in clear. Gmail rule: for gmail.com / googlemail.com only, dots and a ``+tag`` are removed from
  the local part (the current Data Manager page; see docs/audiences.md for why this version).
* **Meta Custom Audiences** (the customer-information-parameters page): ``EMAIL PHONE FN LN CT ST ZIP COUNTRY``,
  every one hashed; phones are the E.164 digits without ``+``.

Names keep their script: NFC, lower-cased, never reduced to a-z (some SDKs drop every character outside a-z,
which turns 山田 into an empty string and so into the hash of nothing).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 bytes, as 64 lower-case hex digits (what both platforms expect)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _drop(text: str, *, categories: tuple[str, ...]) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(categories))


# --- Google ----------------------------------------------------------------------------------------------


def google_email(email: str) -> str | None:
    """Lower-cased, every whitespace removed; gmail.com / googlemail.com lose dots and a +tag before the @."""
    text = "".join(_nfc(email).split()).lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    if domain in GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def google_phone(e164: str) -> str | None:
    """E.164 with the plus sign: ``+819012345678`` (stored phones are E.164 already)."""
    digits = "".join(ch for ch in e164 if ch.isdigit())
    return f"+{digits}" if e164.strip().startswith("+") and digits else None


def google_name(name: str) -> str | None:
    """NFC, lower-cased, trimmed, inner runs of whitespace as one space; the script is kept (山田 stays 山田)."""
    text = " ".join(_nfc(name).split()).lower()
    return text or None


def google_country(country: str) -> str | None:
    code = country.strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def google_zip(postal_code: str, country: str | None) -> str | None:
    """In clear. US: 5 digits or 5+4 kept as given; elsewhere as written, without spaces around it."""
    text = " ".join(_nfc(postal_code).split())
    return text or None


# --- Meta ------------------------------------------------------------------------------------------------


def meta_email(email: str) -> str | None:
    """Trimmed and lower-cased (Meta has no Gmail rule)."""
    text = _nfc(email).strip().lower()
    return text if "@" in text else None


def meta_phone(e164: str) -> str | None:
    """Digits only, country code first, no ``+`` and no leading zeros: ``+1 650 555 1212`` -> ``16505551212``."""
    digits = "".join(ch for ch in e164 if ch.isdigit()).lstrip("0")
    return digits or None


def meta_name(name: str) -> str | None:
    """NFC, lower-cased, without punctuation or spaces; letters of any script kept (UTF-8, as Meta allows)."""
    text = _drop(_nfc(name).lower(), categories=("P", "Z", "C", "S"))
    return text or None


def meta_city(city: str) -> str | None:
    """Like a name, and without digits: no punctuation, no special characters, no spaces."""
    text = _drop(_nfc(city).lower(), categories=("P", "Z", "C", "S", "N"))
    return text or None


def meta_state(state: str) -> str | None:
    """Lower case, no punctuation or spaces (a US state is its 2-letter code, as stored)."""
    return meta_city(state)


def meta_zip(postal_code: str, country: str | None) -> str | None:
    """Lower case, no spaces and no dash; a US zip is its first 5 digits."""
    text = _drop(_nfc(postal_code).lower(), categories=("Z", "C")).replace("-", "")
    if (country or "").upper() == "US":
        text = text[:5]
    return text or None


def meta_country(country: str) -> str | None:
    code = country.strip().lower()
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


# --- the two formats --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Person:
    """What an audience row is made from: one customer's primary values (e-mail and phone as stored)."""

    email: str | None = None
    phone: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    city: str | None = None
    prefecture: str | None = None
    postal_code: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Column:
    header: str
    # The customer field it is made from, as recorded in the provision record.
    field: str
    make: Callable[[Person], str | None]
    hashed: bool


@dataclass(frozen=True)
class Platform:
    name: str
    recipient: str
    columns: tuple[Column, ...]
    # Whether a row with these filled columns can be matched at all (rows that cannot are left out).
    matchable: Callable[[dict[str, str]], bool]

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def row(self, person: Person) -> dict[str, str] | None:
        """Header -> value (hashed where the platform says), only for the values the person has; None when
        nothing in it could be matched."""
        out: dict[str, str] = {}
        for column in self.columns:
            value = column.make(person)
            if value:
                out[column.header] = _hashed(value) if column.hashed else value
        out = self.trim(out)
        return out if out and self.matchable(out) else None

    def trim(self, row: dict[str, str]) -> dict[str, str]:
        return row

    def fields(self, row: dict[str, str]) -> list[str]:
        """The customer fields a row hands over (for the APPI record)."""
        return [c.field for c in self.columns if c.header in row]


# Names, cities, prefectures, postal codes and countries repeat across an audience: their normalised values and
# hashes are cached (measured on 50,000 rows: the rows took about half the time). E-mails and phones are unique and
# only pass through the hash cache.
_hashed = lru_cache(maxsize=1 << 16)(sha256_hex)
_REPEATING = 1 << 12


def _opt(fn: Callable[[str], str | None], attr: str) -> Callable[[Person], str | None]:
    if attr not in ("email", "phone"):
        fn = lru_cache(maxsize=_REPEATING)(fn)

    def make(person: Person) -> str | None:
        value = getattr(person, attr)
        return fn(value) if value else None

    return make


def _zip(fn: Callable[[str, str | None], str | None]) -> Callable[[Person], str | None]:
    fn = lru_cache(maxsize=_REPEATING)(fn)

    def make(person: Person) -> str | None:
        return fn(person.postal_code, person.country) if person.postal_code else None

    return make


_ADDRESS = ("First Name", "Last Name", "Country", "Zip")


class _Google(Platform):
    def trim(self, row: dict[str, str]) -> dict[str, str]:
        # Google matches a mailing address only as the four together ("You must provide First Name and Last
        # Name if you want Google Ads to create a Country and Zip match"): a part without the others could not
        # be matched, so it is not handed over at all.
        if all(h in row for h in _ADDRESS):
            return row
        return {h: v for h, v in row.items() if h not in _ADDRESS}


GOOGLE = _Google(
    name="google",
    recipient="Google LLC (Google Ads Customer Match)",
    columns=(
        Column("Email", "email", _opt(google_email, "email"), True),
        Column("Phone", "phone", _opt(google_phone, "phone"), True),
        Column("First Name", "given_name", _opt(google_name, "given_name"), True),
        Column("Last Name", "family_name", _opt(google_name, "family_name"), True),
        Column("Country", "country", _opt(google_country, "country"), False),
        Column("Zip", "postal_code", _zip(google_zip), False),
    ),
    matchable=lambda row: bool(row),
)


def _meta_matchable(row: dict[str, str]) -> bool:
    # Meta's baseline for a match: an e-mail or a phone, or a full name with where the person lives.
    return (
        "EMAIL" in row
        or "PHONE" in row
        or ("FN" in row and "LN" in row and ("ZIP" in row or "CT" in row) and "COUNTRY" in row)
    )


META = Platform(
    name="meta",
    recipient="Meta Platforms, Inc. (Meta Custom Audiences)",
    columns=(
        Column("EMAIL", "email", _opt(meta_email, "email"), True),
        Column("PHONE", "phone", _opt(meta_phone, "phone"), True),
        Column("FN", "given_name", _opt(meta_name, "given_name"), True),
        Column("LN", "family_name", _opt(meta_name, "family_name"), True),
        Column("CT", "city", _opt(meta_city, "city"), True),
        Column("ST", "prefecture", _opt(meta_state, "prefecture"), True),
        Column("ZIP", "postal_code", _zip(meta_zip), True),
        Column("COUNTRY", "country", _opt(meta_country, "country"), True),
    ),
    matchable=_meta_matchable,
)

PLATFORMS: dict[str, Platform] = {p.name: p for p in (GOOGLE, META)}
