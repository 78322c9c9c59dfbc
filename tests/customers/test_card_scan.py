"""Business cards: real Tesseract on generated card images, the draft's fields, unreadable images, and the
confirmed contact saved by the customer import's identity rules (API and UI)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import func, select

from kizuna.auth.models import AuditEntry
from kizuna.auth.permissions import Actor
from kizuna.customers.card_parse import CardReadError, Line, parse_lines
from kizuna.customers.card_scan import read_card, save_card
from kizuna.customers.models import Company, Customer, DuplicatePair
from kizuna.errors import ValidationError
from tests import factories
from tests.customers.card_images import CARDS, field_hits, render
from tests.web.conftest import csrf_of

SYSTEM = Actor.system("test")
# Floors under the figures measured in README (benchmarks/card_ocr_accuracy.py): five cards read as PNG.
FLOORS = {"email": 5, "phones": 5, "postal_code": 5, "company": 5, "title": 4, "address": 4, "name": 3, "kana": 3}


@pytest.fixture(scope="module")
def drafts() -> list[object]:
    return [read_card(render(card)) for card in CARDS]


def test_real_tesseract_recovers_the_printed_fields(drafts) -> None:
    totals: dict[str, int] = {}
    for card, draft in zip(CARDS, drafts, strict=True):
        for name, ok in field_hits(card, draft).items():
            totals[name] = totals.get(name, 0) + ok
    assert {k: v for k, v in totals.items() if v < FLOORS[k]} == {}, totals
    first = drafts[0]
    assert first.email == "taro.yamada@kizuna-shoji.co.jp"
    assert first.phones == ["+81312345678", "+819011112222"]  # normalised like every phone in Kizuna
    assert (first.company, first.department, first.title) == ("株式会社きずな商事", "営業部", "部長")
    assert (first.postal_code, first.prefecture, first.city) == ("150-0001", "東京都", "渋谷区")
    assert first.url == "https://www.kizuna-shoji.co.jp"
    second = drafts[1]
    assert second.fax == "+81661234568" and second.phones == ["+81661234567"]  # a fax is no phone
    assert second.full_name_kana == "サトウハナコ"  # printed in hiragana, stored in katakana


def test_a_jpeg_photo_reads_as_well(tmp_path) -> None:
    draft = read_card(render(CARDS[3], fmt="JPEG"))
    assert draft.email == "misaki@mirai-llc.jp" and draft.company == "合同会社ミライ"


def test_parser_claims_lines_by_their_shape() -> None:
    lines = [
        Line("Kizuna Systems Inc.", 40),
        Line("Sales Manager", 30),
        Line("Ichiro Suzuki", 80, "Ichiro Suzuki"),
        Line("Tel: +81 (3) 1234-5678  Fax: 03-1234-5679", 20),
        Line("Mail: ichiro@example.com", 20),
        Line("www.example.com", 20),
    ]
    draft = parse_lines(lines)
    assert (draft.company, draft.title, draft.full_name) == ("Kizuna Systems Inc.", "Sales Manager", "Ichiro Suzuki")
    assert (draft.family_name, draft.given_name) == ("Suzuki", "Ichiro")
    assert draft.phones == ["+81312345678"] and draft.fax == "+81312345679"
    assert (draft.email, draft.url) == ("ichiro@example.com", "www.example.com")


def _png(width: int, height: int, color: str = "white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "the image is empty"),
        (b"BEGIN:VCARD\r\nEND:VCARD\r\n", "not a JPEG or PNG image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a JPEG or PNG image"),  # a PNG cut short
        (_png(120, 70), "120×70 pixels, too small to read"),
        (_png(900, 540), "no text was found"),
    ],
)
def test_unreadable_images_are_refused_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(CardReadError, match=problem):
        read_card(data)


def test_a_gif_is_refused_as_the_wrong_format() -> None:
    out = io.BytesIO()
    Image.new("RGB", (900, 540), "white").save(out, "GIF")
    with pytest.raises(CardReadError, match="GIF image; scan the card as JPEG or PNG"):
        read_card(out.getvalue())


def test_saving_follows_the_import_identity_rules(db, session) -> None:
    factories.customer(session, email="taro.yamada@kizuna-shoji.co.jp", family_name="山田", source="shop")
    factories.customer(session, phone="06-6123-4567", family_name="別人")
    session.commit()
    taro, outcome = save_card(
        session,
        actor=SYSTEM,
        values={"email": "Taro.Yamada@Kizuna-Shoji.co.jp", "family_name": "山田", "company": "株式会社きずな商事"},
    )
    assert outcome == "updated" and taro.source == "shop" and taro.attributes["company"] == "株式会社きずな商事"
    session.refresh(taro)
    assert taro.company_id is not None and session.get(Company, taro.company_id).name == "株式会社きずな商事"
    hanako, outcome = save_card(session, actor=SYSTEM, values={"phone": "06-6123-4567", "family_name": "佐藤"})
    session.commit()
    # A phone another customer has is a hint, as in a CSV import: a new customer, the pair put up for review.
    assert outcome == "inserted" and hanako.phone == "+81661234567"
    assert session.scalar(select(func.count()).select_from(DuplicatePair)) == 1
    assert (
        session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "customer.card_scan"))
        == 2
    )
    with pytest.raises(ValidationError, match="e-mail or phone"):
        save_card(session, actor=SYSTEM, values={"family_name": "名無し"})
    with pytest.raises(ValidationError) as bad:
        save_card(session, actor=SYSTEM, values={"email": "not-an-address"})
    assert bad.value.field == "email"


def test_api_scans_a_card_and_saves_the_corrected_contact(client, db) -> None:
    scanned = client.post("/api/v1/cards/scan", files={"file": ("card.png", render(CARDS[1]), "image/png")})
    assert scanned.status_code == 200, scanned.text
    draft = scanned.json()
    assert draft["email"] == "hanako@sakura-kobo.jp" and draft["company"] == "有限会社さくら工房"
    contact = {
        "family_name": "佐藤",
        "given_name": "花子",
        "email": draft["email"],
        "phone": draft["phones"][0],
        "company": draft["company"],
        "title": draft["title"],
    }
    saved = client.post("/api/v1/cards", json=contact)
    assert saved.status_code == 201 and saved.json()["outcome"] == "inserted"
    again = client.post("/api/v1/cards", json=contact)
    assert again.json() == {"customer_id": saved.json()["customer_id"], "outcome": "unchanged"}
    bad = client.post("/api/v1/cards/scan", files={"file": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "card_unreadable"
    assert "not a JPEG or PNG image" in bad.json()["error"]["message"]


def test_ui_reads_a_card_into_the_form_and_saves_it(ui_client, db) -> None:
    c = ui_client("sales")
    c.cookies.set("kizuna_lang", "ja")
    page = c.get("/customers/scan")
    assert page.status_code == 200 and "名刺の読み取り" in page.text
    token = csrf_of(page.text)
    refused = c.post(
        "/customers/scan", data={"csrf_token": token}, files={"file": ("a.png", _png(100, 60), "image/png")}
    )
    assert refused.status_code == 422 and "小さすぎて読めません" in refused.text
    read = c.post(
        "/customers/scan", data={"csrf_token": token}, files={"file": ("a.png", render(CARDS[0]), "image/png")}
    )
    assert read.status_code == 200
    assert 'value="taro.yamada@kizuna-shoji.co.jp"' in read.text and 'value="株式会社きずな商事"' in read.text
    form = dict(re.findall(r'<input id="f-(\w+)" name="\w+" type="\w+" value="([^"]*)"', read.text))
    form["family_name"], form["given_name"] = "山田", "太郎"  # the user corrects what OCR misread
    saved = c.post("/customers/scan/save", data={"csrf_token": csrf_of(read.text), **form}, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    with db.connect() as conn:
        name = conn.execute(select(Customer.family_name, Customer.given_name)).one()
    assert tuple(name) == ("山田", "太郎")
    assert "名刺を新しい顧客として保存しました" in c.get(saved.headers["location"]).text
