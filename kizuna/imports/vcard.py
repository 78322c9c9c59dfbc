"""vCard files (``.vcf``) as import sources: ``kizuna import vcard FILE.vcf`` reads each card as a customer row.

Each card becomes the values a customers CSV row would hold (``card_values``), so cards go through the same
parsing, identity rules, merges, reject report, audit and events as CSV rows, with no second code path.

A small parser of our own rather than ``vobject``: the files phones and Outlook write mix encodings per
property (vCard 2.1/3.0 ``ENCODING=QUOTED-PRINTABLE;CHARSET=SHIFT_JIS`` beside UTF-8 text, and QP soft line
breaks that are not RFC folding), so they must be read as bytes and decoded property by property, and a broken
one must be reported with its card and line. ``vobject`` reads text that is already decoded and reports neither.
The whole file is read before anything is written: a card with broken encoding stops the import, nothing stored.
"""

from __future__ import annotations

import codecs
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna.imports.reader import ImportFileError, Record, Source

# The customer fields a card can fill, in the order the mapping page shows them, then the attributes it keeps.
FIELDS = (
    "email",
    "phone",
    "full_name",
    "family_name",
    "given_name",
    "full_name_kana",
    "family_name_kana",
    "given_name_kana",
    "birth_date",
    "postal_code",
    "prefecture",
    "city",
    "address_line",
    "country",
)
ATTRIBUTES = ("company", "department", "title", "other_emails", "other_phones", "url", "note")
# CHARSET names in exports -> Python codecs. Shift_JIS is read as its Windows superset (as CSV files are).
_CHARSETS = {"shift_jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "shift-jis": "cp932", "windows-31j": "cp932"}
_LINE_BREAK = re.compile(rb"\r\n|\n|\r")
# Phone types in the order one becomes the customer's phone when none is marked preferred.
_PHONE_ORDER = ("cell", "mobile", "work", "voice", "home")


class VCardError(ImportFileError):
    """A card cannot be read (encoding, structure); the message names the card and the line."""


@dataclass
class Property:
    name: str
    params: dict[str, list[str]]
    value: str
    line: int

    def types(self) -> set[str]:
        return {t.lower() for t in self.params.get("TYPE", [])}


@dataclass
class Card:
    number: int  # 1-based position in the file
    line: int  # line of BEGIN:VCARD
    version: str = "3.0"
    properties: list[Property] = field(default_factory=list)

    def get(self, name: str) -> list[Property]:
        return [p for p in self.properties if p.name == name]

    def first(self, name: str) -> str | None:
        found = [p.value for p in self.get(name) if p.value.strip()]
        return found[0] if found else None


def is_vcard(path: Path) -> bool:
    """A vCard file by its name or by its first line (``BEGIN:VCARD``)."""
    if path.suffix.lower() in (".vcf", ".vcard"):
        return True
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(codecs.BOM_UTF8).lstrip()
    return head[:11].upper() == b"BEGIN:VCARD"


def read_cards(path: Path) -> list[Card]:
    """Every card of the file, decoded; raises VCardError naming the card and line of the first problem."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    physical = _LINE_BREAK.split(data)
    # Without CHARSET, a 2.1/3.0 card is UTF-8 or, from a Japanese Outlook, CP932 (the whole file then is);
    # 4.0 is UTF-8 by definition. A file that is neither whole is read as UTF-8, so the error names the first
    # broken property (UTF-8 bytes cut short often still pair up as CP932 kanji: guessing would store mojibake).
    fallback = "utf-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            data.decode("cp932")
            fallback = "cp932"
        except UnicodeDecodeError:
            pass
    cards: list[Card] = []
    card: Card | None = None
    for number, raw in _logical_lines(physical):
        if not raw.strip():
            continue
        try:
            prop = _parse_line(raw, number, card, fallback)
        except VCardError as exc:
            raise VCardError(f"{path.name}: {exc.message}") from None
        if prop.name == "BEGIN" and prop.value.strip().upper() == "VCARD":
            if card is not None:
                raise VCardError(
                    f"{path.name}: card {card.number} (line {card.line}) has no END:VCARD before line {number}"
                )
            card = Card(number=len(cards) + 1, line=number)
            continue
        if card is None:
            raise VCardError(f"{path.name}: line {number}: '{_shown(raw)}' is outside a card (expected BEGIN:VCARD)")
        if prop.name == "END" and prop.value.strip().upper() == "VCARD":
            cards.append(card)
            card = None
            continue
        if prop.name == "VERSION":
            card.version = prop.value.strip()
            if card.version not in ("2.1", "3.0", "4.0"):
                raise VCardError(
                    f"{path.name}: card {card.number}, line {number}: "
                    f"vCard version '{card.version}' is not 2.1, 3.0 or 4.0"
                )
        card.properties.append(prop)
    if card is not None:
        raise VCardError(f"{path.name}: card {card.number} (line {card.line}) has no END:VCARD")
    if not cards:
        raise VCardError(f"{path.name}: no BEGIN:VCARD ... END:VCARD card in the file")
    return cards


def _shown(raw: bytes) -> str:
    return raw[:40].decode("utf-8", "replace")


def _logical_lines(physical: list[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line of its start, bytes) of each content line: RFC folding (a line starting with a space or tab goes on
    the previous one) and vCard 2.1 quoted-printable soft breaks (a QP value ending in ``=`` goes on)."""
    current: bytes | None = None
    start = 0
    for index, line in enumerate(physical, start=1):
        if current is not None and line[:1] in (b" ", b"\t"):
            current += line[1:]
            continue
        if current is not None and _qp_continues(current):
            current = current[:-1] + line.lstrip(b" \t")
            continue
        if current is not None:
            yield start, current
        current, start = line, index
    if current is not None:
        yield start, current


def _qp_continues(line: bytes) -> bool:
    head, sep, _ = line.partition(b":")
    return bool(sep) and b"QUOTED-PRINTABLE" in head.upper() and line.endswith(b"=")


def _split_unquoted(text: str, sep: str) -> list[str]:
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _parse_line(raw: bytes, number: int, card: Card | None, fallback: str) -> Property:
    where = f"card {card.number}, line {number}" if card else f"line {number}"
    colon = raw.find(b":")
    if colon < 0:
        raise VCardError(f"{where}: '{_shown(raw)}' is not 'NAME:value'")
    # Names and parameters are ASCII in every version; a quoted parameter value (4.0 SORT-AS) may be UTF-8.
    try:
        head = raw[:colon].decode("utf-8")
    except UnicodeDecodeError:
        raise VCardError(f"{where}: the property name is not readable text") from None
    while head.count('"') % 2:  # a ':' inside a quoted parameter value
        nxt = raw.find(b":", colon + 1)
        if nxt < 0:
            raise VCardError(f"{where}: unclosed quote in the parameters of '{_shown(raw)}'")
        colon = nxt
        head = raw[:colon].decode("utf-8", "replace")
    body = raw[colon + 1 :]
    pieces = _split_unquoted(head, ";")
    name = pieces[0].rsplit(".", 1)[-1].strip().upper()  # "item1.TEL" (Apple's groups) is TEL
    params: dict[str, list[str]] = {}
    for piece in pieces[1:]:
        key, sep, val = piece.partition("=")
        if not sep:  # vCard 2.1 bare parameters: TEL;WORK;VOICE, ;QUOTED-PRINTABLE, ;BASE64
            key, val = piece, piece
            upper = piece.strip().upper()
            key = "ENCODING" if upper in ("QUOTED-PRINTABLE", "BASE64", "8BIT", "7BIT", "B") else "TYPE"
        # 4.0 quotes whole lists (TYPE="cell,voice", SORT-AS="ヤマダ,タロウ"): the quotes only protect ';' and ':'.
        values = [v.strip() for v in val.replace('"', "").split(",")]
        params.setdefault(key.strip().upper(), []).extend(v for v in values if v)
    encoding = (params.get("ENCODING") or [""])[0].upper()
    if name in ("PHOTO", "LOGO", "SOUND", "KEY") or encoding in ("BASE64", "B"):
        return Property(name, params, "", number)  # binary data: not imported, not decoded
    charset = (params.get("CHARSET") or [""])[0].lower()
    codec = _CHARSETS.get(charset, charset) if charset else fallback
    if card is not None and card.version == "4.0" and not charset:
        codec = "utf-8"
    try:
        codecs.lookup(codec)
    except LookupError:
        raise VCardError(f"{where}: {name} has an unknown CHARSET '{charset}'") from None
    if encoding == "QUOTED-PRINTABLE":
        if re.search(rb"=(?![0-9A-Fa-f]{2})", body.rstrip(b"=")):
            raise VCardError(f"{where}: {name} is not valid quoted-printable ('=' not followed by two hex digits)")
        body = quopri.decodestring(body)
    try:
        value = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise VCardError(
            f"{where}: {name} does not decode as {codec.upper()} (byte {exc.start + 1} of its value); "
            "the file's encoding is broken"
        ) from None
    if "\x00" in value:
        raise VCardError(f"{where}: {name} contains a NUL character")
    return Property(name, params, value, number)


def _unescape(text: str) -> str:
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), text).strip()


def _components(value: str) -> list[str]:
    """A structured value (N, ADR, ORG) split on unescaped ';', each part unescaped."""
    return [_unescape(p) for p in re.split(r"(?<!\\);", value)]


def card_values(card: Card) -> tuple[dict[str, Any], dict[str, Any]]:
    """(customer field values, attributes) of one card; empty values are left out."""
    values: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    n = card.first("N")
    if n:
        parts = [*_components(n), "", ""]
        values["family_name"], values["given_name"] = parts[0], parts[1]
        sort_as = next((p.params.get("SORT-AS") for p in card.get("N") if p.params.get("SORT-AS")), None)
        if sort_as:  # vCard 4.0: N;SORT-AS="ヤマダ,タロウ"
            values["family_name_kana"] = sort_as[0]
            values["given_name_kana"] = sort_as[1] if len(sort_as) > 1 else ""
    fn = card.first("FN")
    if fn and not (values.get("family_name") or values.get("given_name")):
        values["full_name"] = _unescape(fn)
    for prop, target in (("X-PHONETIC-LAST-NAME", "family_name_kana"), ("X-PHONETIC-FIRST-NAME", "given_name_kana")):
        if text := card.first(prop):
            values[target] = _unescape(text)
    if (sort := card.first("SORT-STRING")) and not (values.get("family_name_kana") or values.get("given_name_kana")):
        values["full_name_kana"] = _unescape(sort)
    emails = _ranked(card.get("EMAIL"), ())
    if emails:
        values["email"] = emails[0][1]
        if len(emails) > 1:
            extras["other_emails"] = ", ".join(v for _, v in emails[1:])
    phones = _ranked(card.get("TEL"), _PHONE_ORDER)
    if phones:
        values["phone"] = phones[0][1]
        if len(phones) > 1:
            extras["other_phones"] = ", ".join(f"{t}: {v}" if t else v for t, v in phones[1:])
    if adr := card.first("ADR"):
        parts = [*_components(adr), *[""] * 7]
        _box, extended, street, locality, region, code, country = parts[:7]
        values.update(postal_code=code, prefecture=region, city=locality, country=country)
        values["address_line"] = " ".join(p for p in (street, extended) if p)
    if bday := card.first("BDAY"):
        values["birth_date"] = bday.strip()
    if org := card.first("ORG"):
        parts = [p for p in _components(org) if p]
        if parts:
            extras["company"] = parts[0]
            if len(parts) > 1:
                extras["department"] = " ".join(parts[1:])
    for prop, name in (("TITLE", "title"), ("URL", "url"), ("NOTE", "note")):
        if text := card.first(prop):
            extras[name] = _unescape(text)
    clean = {k: v.strip() for k, v in values.items() if isinstance(v, str) and v.strip()}
    return clean, {k: v for k, v in extras.items() if v}


def _ranked(props: list[Property], order: tuple[str, ...]) -> list[tuple[str, str]]:
    """(type, value) of e-mails or phones: preferred first, then by ``order`` of types, then file order."""

    def rank(item: tuple[int, Property]) -> tuple[int, int, int]:
        index, prop = item
        types = prop.types()
        preferred = "pref" in types or bool(prop.params.get("PREF"))
        kind = min((order.index(t) for t in types if t in order), default=len(order))
        return (0 if preferred else 1, kind, index)

    found = []
    for _, prop in sorted(enumerate(props), key=rank):
        value = _unescape(prop.value)
        if value.lower().startswith(("tel:", "mailto:")):
            value = value.split(":", 1)[1]
        if value:
            kind = next((t for t in (*order, "internet") if t in prop.types()), "")
            found.append(("" if kind == "internet" else kind, value))
    return found


def open_vcard(path: Path) -> Source:
    """A vCard file as a customers source: the fields its cards fill stand in for the header."""
    cards = read_cards(path)
    present: set[str] = set()
    for card in cards:
        values, extras = card_values(card)
        present.update(values, extras)
    headers = [f for f in (*FIELDS, *ATTRIBUTES) if f in present]
    mapping = {f: f for f in FIELDS if f in present}
    # Company, title and the rest have no customer field: they are kept as attributes, so never "unmapped".
    return Source(path, "vcard", "utf-8", headers, mapping, [], len(cards) + 1)


def vcard_records(source: Source) -> Iterator[Record]:
    """One record per card; its line is the card's BEGIN:VCARD line, so a reject names where the card starts."""
    for card in read_cards(source.path):
        values, extras = card_values(card)
        if values or extras:
            yield Record(card.line, values, extras)


def vcard_rows(source: Source) -> Iterator[tuple[int, list[str | None]]]:
    """(line, cells in header order) of every card, for the reject report."""
    for card in read_cards(source.path):
        values, extras = card_values(card)
        both = {**values, **extras}
        yield card.line, [both.get(h) for h in source.headers]
