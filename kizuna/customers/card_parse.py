"""A business card's recognised lines read into a draft contact: name, kana, company, title, e-mail, phones, address.

The lines come from ``card_scan`` (Tesseract). Each line is claimed by the first rule that recognises it: e-mail,
URL, phone/fax (by label or shape), postal code and address, company (by its legal-form suffix), title (by title
words), kana (a line of kana only); the name is the tallest remaining line that looks like a person's name,
since cards print the name largest. Nothing here is sure: the user corrects the draft before it is saved.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from kizuna.customers.importer.columns import PREFECTURES
from kizuna.errors import KizunaError
from kizuna.normalize import is_japanese, normalize_kana, normalize_phone, split_full_name

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
MAIL_LABEL = re.compile(r"^\s*(?:e\s*-?\s*mail|mail|メール)\s*[:：.]?\s*", re.IGNORECASE)
URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9.\-/_~%?#=&:+]+", re.IGNORECASE)
# 0X-XXXX-XXXX, 0XX(XXX)XXXX, +81 X XXXX XXXX: Japanese numbers with any of the separators cards print.
PHONE = re.compile(r"(?:\+81[\s\-]?\(?0?\)?|0)\d{1,4}[\s\-()]{0,2}\d{1,4}[\s\-()]{0,2}\d{3,4}")
FAX_LABEL = re.compile(r"\b(?:FAX|Fax|fax|F)\b\s*[.:：]?\s*$|ファクス|ファックス|FAX")
# With 〒, or standing alone: "234-5678" inside the phone 03-1234-5678 is no postal code.
POSTAL = re.compile(r"(?:〒\s*|(?<![\d\-]))(\d{3})\s*[-ー−‐]\s*(\d{4})(?![\d\-])")
COMPANY = re.compile(
    r"株式会社|有限会社|合同会社|合資会社|合名会社|一般社団法人|一般財団法人|公益社団法人|医療法人|学校法人|"
    r"\bInc\b\.?|\bCo\.,?\s*Ltd\b\.?|\bCorporation\b|\bCorp\b\.?|\bLLC\b|\bK\.K\.|\bLtd\b\.?|\bGmbH\b",
    re.IGNORECASE,
)
TITLE_WORDS = (
    "代表取締役社長",
    "代表取締役",
    "取締役",
    "執行役員",
    "副社長",
    "社長",
    "会長",
    "本部長",
    "部長",
    "次長",
    "課長",
    "係長",
    "主任",
    "室長",
    "所長",
    "店長",
    "支店長",
    "マネージャー",
    "マネジャー",
    "リーダー",
    "ディレクター",
    "エンジニア",
    "コンサルタント",
    "manager",
    "director",
    "president",
    "ceo",
    "cto",
    "coo",
    "cfo",
    "engineer",
    "representative",
    "consultant",
)
DEPARTMENT = re.compile(
    r"(?:部|課|室|本部|グループ|チーム|センター|事業部|division|department|dept\.?)$", re.IGNORECASE
)
KANA_ONLY = re.compile(r"^[ぁ-んァ-ヶーｦ-ﾟ・\s]{2,}$")
KANJI = re.compile(r"[一-龯々〆ヵヶ]")
NAME_CHARS = re.compile(r"^[一-龯々〆ヵヶぁ-んァ-ヶー\s]{2,12}$")
LATIN_NAME = re.compile(r"^[A-Z][a-z]+(?:\s+[A-Z][a-z.]*){1,2}$")
CITY = re.compile(r"^((?:.+?郡)?.+?[市区町村](?:.{1,4}?区)?)(.*)$")
_CJK_GAP = re.compile(r"(?<=[^\x00-\x7f])\s+(?=[^\x00-\x7f])")


class CardReadError(KizunaError):
    """The image cannot be read as a business card (not an image, empty, too small, no text)."""

    status_code = 422
    code = "card_unreadable"


@dataclass
class Line:
    """One recognised line and the height of its text in pixels of the original image (the name is tallest)."""

    text: str
    height: float = 0.0
    # The line with a space wherever the card shows a wide gap (the one between family and given name).
    spaced: str = ""


@dataclass
class CardDraft:
    """What the card seems to say; every field may be wrong or missing until the user confirms it."""

    full_name: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    full_name_kana: str | None = None
    company: str | None = None
    department: str | None = None
    title: str | None = None
    email: str | None = None
    phones: list[str] = field(default_factory=list)  # E.164, the first is the main one
    fax: str | None = None
    url: str | None = None
    postal_code: str | None = None
    prefecture: str | None = None
    city: str | None = None
    address_line: str | None = None
    lines: list[str] = field(default_factory=list)  # as recognised, for the user to compare


def clean(text: str) -> str:
    """NFKC (full-width digits and letters to ASCII), one space between Latin words, none between Japanese
    characters: Tesseract's Japanese model splits 株式会社 into "words" at random, so its spaces mean nothing there.
    """
    text = unicodedata.normalize("NFKC", text).strip()
    text = re.sub(r"\s+", " ", text)
    return _CJK_GAP.sub("", text)


def parse_lines(lines: list[Line]) -> CardDraft:
    """The draft contact of a card's recognised lines (in reading order)."""
    draft = CardDraft(lines=[ln.text for ln in lines])
    rest: list[Line] = []
    address_next = False
    for line in lines:
        text = clean(line.text)
        if not text:
            continue
        # "E-mail taro@..." or "Mail:taro@...": the label is no part of the address.
        compact = MAIL_LABEL.sub("", text).replace(" ", "")
        if address_next and not (EMAIL.search(compact) or PHONE.search(compact)):
            _address(draft, text)
            address_next = False
            continue
        address_next = False
        claimed = False
        if (found := EMAIL.search(compact)) and draft.email is None:
            draft.email = found.group(0).lower()
            claimed = True
        if (found := URL.search(text)) and draft.url is None and "@" not in found.group(0):
            draft.url = found.group(0)
            claimed = True
        if not claimed and (postal := POSTAL.search(text)) and draft.postal_code is None:
            draft.postal_code = f"{postal.group(1)}-{postal.group(2)}"
            after = text[postal.end() :].strip()
            if after:
                _address(draft, after)
            else:
                address_next = True
            continue
        if not claimed:
            claimed = _phones(draft, text)
        if claimed:
            continue
        if COMPANY.search(text):
            draft.company = draft.company or text
            continue
        if _title(draft, text):
            continue
        if KANA_ONLY.match(text):
            draft.full_name_kana = draft.full_name_kana or normalize_kana(_with_gap(line, text))
            continue
        rest.append(Line(text, line.height, line.spaced))
    _name(draft, rest)
    return draft


def _phones(draft: CardDraft, text: str) -> bool:
    found = False
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if not 9 <= len(digits) <= 12:
            continue
        try:
            number = normalize_phone(match.group(0))
        except (KizunaError, ValueError):
            continue
        if number is None:
            continue
        found = True
        label = text[: match.start()]
        if FAX_LABEL.search(label):
            draft.fax = draft.fax or number
        elif number not in draft.phones:
            draft.phones.append(number)
    return found


def _address(draft: CardDraft, text: str) -> None:
    text = text.replace(" ", "") if not text.isascii() else text
    for name in PREFECTURES.values():
        if text.startswith(name):
            draft.prefecture = name
            text = text[len(name) :]
            break
    if draft.prefecture and (city := CITY.match(text)):
        draft.city, text = city.group(1), city.group(2)
    draft.address_line = text or None


def _title(draft: CardDraft, text: str) -> bool:
    lowered = text.lower()
    if not any(word in lowered for word in TITLE_WORDS):
        return False
    if draft.title is not None:
        return True  # another reading of the title line
    # "営業部部長": the department before the first title word, when it is named like one.
    at = min(lowered.find(word) for word in TITLE_WORDS if word in lowered)
    before = text[:at].strip()
    if before and DEPARTMENT.search(before):
        draft.department, draft.title = before, text[at:].strip()
    else:
        draft.title = text
    return True


def _name(draft: CardDraft, rest: list[Line]) -> None:
    japanese = [ln for ln in rest if NAME_CHARS.match(ln.text) and len(KANJI.findall(ln.text)) >= 2]
    candidates = japanese or [ln for ln in rest if LATIN_NAME.match(ln.text)]
    if not candidates:
        return
    # The name is among the tallest lines; of those, the longest reading wins (one reading of a big name
    # may be "高橋" where another has "高橋 健"), a family/given space breaking ties.
    tallest = max(ln.height for ln in candidates)
    near = [ln for ln in candidates if ln.height >= 0.75 * tallest]
    chosen = max(near, key=lambda ln: (len(ln.text.replace(" ", "")), " " in ln.text, ln.height))
    draft.full_name = _with_gap(chosen, chosen.text)
    draft.family_name, draft.given_name = split_full_name(draft.full_name)


def _with_gap(line: Line, text: str) -> str:
    """``text`` with the card's one wide gap (山田 太郎, ヤマダ タロウ) when the line shows exactly one."""
    parts = re.sub(r"\s+", " ", unicodedata.normalize("NFKC", line.spaced)).strip().split(" ")
    if len(parts) == 2 and "".join(parts) == text.replace(" ", "") and is_japanese(text):
        return " ".join(parts)
    return text
