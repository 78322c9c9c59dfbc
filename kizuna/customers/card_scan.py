"""Business-card scans: an image read by Tesseract's Japanese model into a draft contact, and the confirmed
contact saved through the customer import's identity rules.

Tesseract (Debian's ``tesseract-ocr`` and ``tesseract-ocr-jpn``) is run through ``pytesseract``. A card prints
its name several times larger than its address, and Tesseract reads neither size well at the other's scale, so
the image is read twice: once scaled so that body text is about 20 px high (addresses, phones, e-mail), and once
smaller so that the name is (measured on the generated cards in tests/customers/card_images.py: at one scale
the 120 px name was lost on 2 cards of 5, at the other the e-mail was misread on 2). The parser takes the
contact lines from the first reading and name candidates from both.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.customers.card_parse import CardDraft, CardReadError, Line, clean, parse_lines
from kizuna.customers.models import Customer
from kizuna.errors import ValidationError

# Smaller than this a card photo holds too few pixels per character for Tesseract to read Japanese.
MIN_WIDTH, MIN_HEIGHT = 400, 220
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 7,000 × 5,700 photo; larger is refused rather than decoded (decompression bombs)
FORMATS = ("JPEG", "PNG")
# The two readings: the image's width in pixels for each (a card is ~1.65 times as wide as high).
BODY_WIDTH = 910
NAME_WIDTH = 640
LANG = "jpn+eng"
OCR_TIMEOUT_S = 60


def open_image(data: bytes) -> Image.Image:
    """The image, upright and in greyscale; CardReadError naming what is wrong with it otherwise."""
    if not data:
        raise CardReadError("the image is empty", key="cards.error.empty")
    if len(data) > MAX_BYTES:
        raise CardReadError(f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB", key="cards.error.too_large")
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in FORMATS:
            raise CardReadError(
                f"the file is a {image.format} image; scan the card as JPEG or PNG", key="cards.error.not_image"
            )
        if image.width * image.height > MAX_PIXELS:
            raise CardReadError(
                f"the image is {image.width}×{image.height} pixels; at most {MAX_PIXELS:,} are read",
                key="cards.error.too_large",
            )
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        raise CardReadError("the file is not a JPEG or PNG image", key="cards.error.not_image") from None
    image = ImageOps.exif_transpose(image) or image
    if image.width < MIN_WIDTH or image.height < MIN_HEIGHT:
        # A portrait photo of a landscape card is fine: compare the longer sides.
        long_side, short_side = max(image.size), min(image.size)
        if long_side < MIN_WIDTH or short_side < MIN_HEIGHT:
            raise CardReadError(
                f"the image is {image.width}×{image.height} pixels, too small to read; "
                f"photograph the card at {MIN_WIDTH}×{MIN_HEIGHT} or more",
                key="cards.error.too_small",
                params={"size": f"{image.width}×{image.height}", "min": f"{MIN_WIDTH}×{MIN_HEIGHT}"},
            )
    return ImageOps.autocontrast(image.convert("L"))


def _read(image: Image.Image, width: int, psm: int) -> list[Line]:
    """Tesseract's lines at ``width`` pixels wide, each with its text height in pixels of the original image."""
    import pytesseract

    scale = width / image.width
    scaled = image.resize((width, max(int(image.height * scale), 1)), Image.Resampling.LANCZOS)
    try:
        data = pytesseract.image_to_data(
            scaled,
            lang=LANG,
            config=f"--psm {psm}",
            output_type=pytesseract.Output.DICT,
            timeout=OCR_TIMEOUT_S,
        )
    except pytesseract.TesseractNotFoundError:
        raise CardReadError(
            "Tesseract is not installed on the server (Debian packages tesseract-ocr and tesseract-ocr-jpn)",
            key="cards.error.no_tesseract",
        ) from None
    except RuntimeError as exc:  # pytesseract's timeout
        raise CardReadError(f"reading the image took too long ({exc})", key="cards.error.timeout") from None
    lines: dict[tuple[int, int, int], list[tuple[str, int, int, int]]] = {}
    for i, word in enumerate(data["text"]):
        if not word.strip() or float(data["conf"][i]) < 0:
            continue
        key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append((word, data["left"][i], data["width"][i], data["height"][i]))
    found = []
    for words in lines.values():
        spaced = _joined(words)
        found.append(Line(clean(spaced), max(w[3] for w in words) / scale, spaced))
    return [ln for ln in found if ln.text]


def _joined(words: list[tuple[str, int, int, int]]) -> str:
    """A line's words joined with a space only where the card has a visible gap (a name's family/given gap is
    about a third of the glyph height; Tesseract's Japanese "words" of one word sit closer)."""
    height = max(w[3] for w in words)
    text = words[0][0]
    for (_, left, width, _), (word, nxt, _, _) in zip(words, words[1:], strict=False):
        gap = nxt - (left + width)
        ascii_pair = text[-1:].isascii() and word[:1].isascii()
        # Latin words are spaced narrowly; Japanese text only has a gap where the card put one.
        text += (" " if gap > height * (0.25 if ascii_pair else 0.3) else "") + word
    return text


def read_card(data: bytes) -> CardDraft:
    """The draft contact of a card image (JPEG or PNG bytes); CardReadError when it cannot be read at all."""
    image = open_image(data)
    body = _read(image, BODY_WIDTH, 6)
    if not body:
        raise CardReadError("no text was found on the image; is it a business card?", key="cards.error.no_text")
    names = _read(image, NAME_WIDTH, 11)
    # The second reading only offers names: its small text is the worse of the two.
    draft = parse_lines(body)
    if draft.full_name is None or len(draft.full_name.replace(" ", "")) < 3:
        others = parse_lines(body + [ln for ln in names if ln.text not in {b.text for b in body}])
        draft.full_name, draft.family_name, draft.given_name = others.full_name, others.family_name, others.given_name
        draft.full_name_kana = draft.full_name_kana or others.full_name_kana
    draft.lines = [ln.text for ln in body]
    return draft


def draft_record(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(customer field values, attributes) of a confirmed card, as an import row of the customers importer."""
    fields = ("email", "phone", "family_name", "given_name", "full_name_kana", "postal_code", "prefecture")
    fields += ("city", "address_line")
    row = {k: values[k].strip() for k in fields if isinstance(values.get(k), str) and values[k].strip()}
    attributes = {
        k: values[k].strip()
        for k in ("company", "department", "title", "url", "fax", "other_phones")
        if isinstance(values.get(k), str) and values[k].strip()
    }
    return row, attributes


def save_card(session: Session, *, actor: Actor, values: dict[str, Any]) -> tuple[Customer, str]:
    """Save a confirmed card as a customer by the customer import's rules (the same e-mail or external id is
    the same person and is updated; a shared phone is put up for review); answers the customer and what
    happened ("inserted", "updated" or "unchanged"). ValidationError naming the field when a value is bad."""
    from kizuna.customers.importer import IMPORTER
    from kizuna.customers.importer.companies import link_companies
    from kizuna.customers.importer.writing import write_people
    from kizuna.imports.importer import ImportOptions, RowRejected, WriteContext
    from kizuna.imports.reader import Record
    from kizuna.imports.report import ImportReport

    require(actor, "customers:write")
    row, attributes = draft_record(values)
    if not row.get("email") and not row.get("phone"):
        raise ValidationError("give the card's e-mail or phone: a contact is recognised by them", field="email")
    digest = hashlib.sha256(json.dumps([row, attributes], sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    options = ImportOptions(file_name="business-card", file_sha256=digest, extra_to_attributes=True)
    warnings: list[str] = []
    try:
        parsed = IMPORTER.parse(Record(1, row, attributes), options, lambda f, r: warnings.append(r.text))
    except RowRejected as exc:
        field, reason = exc.errors[0]
        raise ValidationError(reason.text, field=field) from None
    report = ImportReport(kind="customers", file="business-card")
    write_people(session, [parsed], WriteContext(actor=actor, options=options, report=report))
    session.flush()
    customer = _found(session, parsed.identities())
    # The card's company becomes the contact's company record (found by name, or created).
    link_companies(session, [customer.id], actor=actor)
    session.refresh(customer)
    outcome = "inserted" if report.inserted else "updated" if report.updated or report.merged else "unchanged"
    audit.record(
        session,
        actor=actor,
        action="customer.card_scan",
        entity_type="customer",
        entity_id=customer.id,
        details={"outcome": outcome, "warnings": warnings},
        summary=f"business card saved ({outcome})",
    )
    return customer, outcome


def _found(session: Session, identities: list[tuple[str, str]]) -> Customer:
    from kizuna.customers.models import CustomerIdentity

    for kind, value in identities:
        customer_id = session.scalar(
            select(CustomerIdentity.customer_id)
            .join(Customer, Customer.id == CustomerIdentity.customer_id)
            .where(CustomerIdentity.kind == kind, CustomerIdentity.value == value, Customer.status == "active")
            .order_by(CustomerIdentity.customer_id.desc())
        )
        if customer_id is not None:
            return session.get_one(Customer, customer_id)
    raise ValidationError("the card was not saved: it names nobody by e-mail or phone", field="email")
