"""Business-card images rendered with Noto Sans CJK JP, for the OCR tests and the accuracy figure in README."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
BOLD = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
JP_INDEX = 0  # the collection's first face is Noto Sans CJK JP


@dataclass
class CardSpec:
    """What is printed on a card, and so what a perfect reading would give."""

    name: str
    kana: str | None
    company: str
    title: str
    email: str
    phones: list[str]  # as printed; normalised in the assertions
    postal_code: str
    address: str
    department: str = ""
    url: str = ""
    fax: str = ""
    extra: list[str] = field(default_factory=list)


CARDS = [
    CardSpec(
        name="山田 太郎",
        kana="ヤマダ タロウ",
        company="株式会社きずな商事",
        department="営業部",
        title="部長",
        email="taro.yamada@kizuna-shoji.co.jp",
        phones=["03-1234-5678", "090-1111-2222"],
        postal_code="150-0001",
        address="東京都渋谷区神宮前1-2-3",
        url="https://www.kizuna-shoji.co.jp",
    ),
    CardSpec(
        name="佐藤 花子",
        kana="さとう はなこ",
        company="有限会社さくら工房",
        title="代表取締役",
        email="hanako@sakura-kobo.jp",
        phones=["06-6123-4567"],
        fax="06-6123-4568",
        postal_code="530-0001",
        address="大阪府大阪市北区梅田2-4-9",
    ),
    CardSpec(
        name="鈴木 一郎",
        kana=None,
        company="Kizuna Systems Inc.",
        department="開発本部",
        title="課長",
        email="ichiro.suzuki@kizuna-sys.com",
        phones=["045-222-3333"],
        postal_code="220-0012",
        address="神奈川県横浜市西区みなとみらい3-6-1",
    ),
    CardSpec(
        name="田中 美咲",
        kana="タナカ ミサキ",
        company="合同会社ミライ",
        title="マーケティング Manager",
        email="misaki@mirai-llc.jp",
        phones=["080-4444-5555"],
        postal_code="460-0008",
        address="愛知県名古屋市中区栄3-15-33",
    ),
    CardSpec(
        name="高橋 健",
        kana="タカハシ ケン",
        company="株式会社北海フーズ",
        department="第二営業課",
        title="主任",
        email="ken.takahashi@hokkai-foods.jp",
        phones=["011-555-6666", "070-7777-8888"],
        postal_code="060-0005",
        address="北海道札幌市中央区北5条西2-5",
    ),
]


def render(card: CardSpec, *, width: int = 1820, height: int = 1100, fmt: str = "PNG") -> bytes:
    """A 91 × 55 mm card at 508 dpi: company top left, title and name large in the middle, contacts below."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(BOLD if bold else FONT, size, index=JP_INDEX)

    x, y = 110, 90
    draw.text((x, y), card.company, fill="black", font=font(64, bold=True))
    y += 150
    role = " ".join(p for p in (card.department, card.title) if p)
    draw.text((x, y), role, fill="black", font=font(52))
    y += 90
    if card.kana:
        draw.text((x, y), card.kana, fill="black", font=font(44))
        y += 70
    draw.text((x, y), card.name, fill="black", font=font(120, bold=True))
    y += 200
    small = font(44)
    lines = [f"〒{card.postal_code} {card.address}"]
    labels = ["TEL", "携帯"] if len(card.phones) > 1 else ["TEL"]
    lines += [f"{label} {phone}" for label, phone in zip(labels, card.phones, strict=False)]
    if card.fax:
        lines.append(f"FAX {card.fax}")
    lines.append(f"E-mail {card.email}")
    if card.url:
        lines.append(card.url)
    for line in lines + card.extra:
        draw.text((x, y), line, fill="black", font=small)
        y += 72
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def field_hits(card: CardSpec, draft: object) -> dict[str, bool]:
    """Which fields of ``draft`` (a CardDraft) hold what the card printed; names compare without spaces."""
    from kizuna.normalize import normalize_kana, normalize_phone

    def same(a: str | None, b: str | None) -> bool:
        return (a or "").replace(" ", "") == (b or "").replace(" ", "")

    hits = {
        "name": same(draft.full_name, card.name),
        "company": same(draft.company, card.company),
        "title": same(draft.title, card.title) and same(draft.department, card.department or None),
        "email": draft.email == card.email,
        "phones": draft.phones == [normalize_phone(p) for p in card.phones],
        "postal_code": draft.postal_code == card.postal_code,
        "address": same(f"{draft.prefecture or ''}{draft.city or ''}{draft.address_line or ''}", card.address),
    }
    if card.kana:
        hits["kana"] = same(draft.full_name_kana, normalize_kana(card.kana))
    return hits
