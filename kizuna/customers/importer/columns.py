"""Which columns a customer file may have: each field with the header names it is recognised by.

Adding a customer field to imports means adding one entry here (beside the model, the migration and the
schema): parsing, staging and writing take their lists of fields from ``WRITTEN`` and ``FIELDS``.
"""

from __future__ import annotations

from kizuna.customers.identities import MIRRORED as IDENTITY_FIELDS
from kizuna.customers.identities import kind_for_header
from kizuna.imports.reader import Columns

# Besides generic Japanese and English names, the headers of the exports users bring from other systems:
# EC-CUBE 4's member CSV (会員ID, お名前(姓), 都道府県(名称), 住所1 = city and town, 住所2 = the rest, TEL, 誕生日),
# Shopify's customer export (Customer ID, First Name, Default Address ..., Accepts Email Marketing, Tags),
# HubSpot's contact export (Record ID, Phone Number, Street Address, State/Region, Postal Code, Country/Region)
# and Salesforce's contact report and data export (Contact ID, Mailing Street / MailingStreet, Birthdate,
# Lead Source, Email Opt Out). Headers compare ignoring case, spaces, underscores and hyphens.
ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "顧客ID",
        "顧客番号",
        "顧客コード",
        "会員ID",
        "会員番号",
        "customer id",
        "customer no",
        "member id",
        "record id",
        "contact id",
    ),
    "email": ("メールアドレス", "メール", "Eメール", "e-mail", "mail", "email address", "mail address"),
    "phone": ("電話番号", "電話", "TEL", "telephone", "phone number"),
    "family_name": ("姓", "苗字", "名字", "氏", "お名前(姓)", "last name", "surname", "family name"),
    "given_name": ("名", "お名前(名)", "first name", "given name"),
    "family_name_kana": (
        "セイ",
        "せい",
        "姓(カナ)",
        "姓カナ",
        "姓(フリガナ)",
        "姓フリガナ",
        "姓(ふりがな)",
        "お名前(セイ)",
        "last name kana",
    ),
    "given_name_kana": (
        "メイ",
        "めい",
        "名(カナ)",
        "名カナ",
        "名(フリガナ)",
        "名フリガナ",
        "名(ふりがな)",
        "お名前(メイ)",
        "first name kana",
    ),
    "birth_date": ("生年月日", "誕生日", "birthday", "birthdate", "date of birth", "dob"),
    "gender": ("性別", "性別(名称)", "sex"),
    "postal_code": (
        "郵便番号",
        "〒",
        "zip",
        "zip code",
        "postcode",
        "postal code",
        "default address zip",
        "mailing zip/postal code",
        "mailing postal code",
    ),
    "prefecture": (
        "都道府県",
        "都道府県(名称)",
        "state",
        "state/region",
        "province",
        "default address province code",
        "mailing state/province",
        "mailing state",
    ),
    "city": ("市区町村", "市町村", "住所1", "default address city", "mailing city"),
    "address_line": (
        "住所",
        "番地",
        "住所2",
        "address",
        "address1",
        "street",
        "street address",
        "default address address1",
        "mailing street",
    ),
    "country": (
        "国",
        "国コード",
        "country code",
        "country/region",
        "default address country code",
        "mailing country",
    ),
    "source": ("流入元", "登録経路", "lead source", "original source"),
    "tags": ("タグ", "tag"),
    "email_opt_in": (
        "メール配信許諾",
        "メール配信",
        "メール配信希望",
        "メルマガ",
        "メルマガ配信",
        "newsletter",
        "email consent",
        "accepts email marketing",
        "accepts marketing",
    ),
    # The same answer asked the other way round (Salesforce): true means no marketing e-mail.
    "email_opt_out": ("メール配信停止", "配信停止", "email opt out", "has opted out of email"),
}
# One column with the whole name (and its reading), as many Japanese systems export it; split on the way in.
ALIASES["full_name"] = ("氏名", "名前", "お名前", "フルネーム", "顧客名", "name", "customer name")
ALIASES["full_name_kana"] = (
    "フリガナ",
    "ふりがな",
    "氏名カナ",
    "氏名(カナ)",
    "氏名(フリガナ)",
    "カナ氏名",
    "furigana",
    "name kana",
)
COLUMNS = Columns(
    aliases=ALIASES,
    required=[IDENTITY_FIELDS],
    also_required_by=kind_for_header,
    custom_attributes=True,
    # A mobile number is the phone only when the file has no other phone column (Salesforce and HubSpot
    # exports have both; Shopify has the customer's Phone and the default address's).
    fallbacks={
        "phone": (
            "携帯電話",
            "携帯電話番号",
            "携帯番号",
            "mobile",
            "mobile phone",
            "mobile phone number",
            "default address phone",
        )
    },
)
# The columns an import fills; the rest (owner, stage, locale...) are the CRM's own.
WRITTEN = tuple(f for f in ALIASES if f not in ("tags", "email_opt_in", "email_opt_out", "full_name", "full_name_kana"))
# A whole-name column fills these only when the file has no separate columns for them.
WHOLE_NAMES = (("full_name", "family_name", "given_name"), ("full_name_kana", "family_name_kana", "given_name_kana"))
_GENDER_NAMES = {
    "male": ("男", "男性", "m", "male", "man"),
    "female": ("女", "女性", "f", "female", "woman"),
    "other": ("その他", "other"),
    "unknown": ("不明", "未回答", "回答しない", "unknown"),
}
GENDER = {alias: gender for gender, aliases in _GENDER_NAMES.items() for alias in aliases}


# A parsed row's values in this order: rows travel from the parser processes, and into the staging table, as
# tuples (None for an empty cell), which pickle and insert far cheaper than one dictionary per row.
FIELDS = (*WRITTEN, "attributes")
_AT = {name: i for i, name in enumerate(FIELDS)}
# (identity kind, its position in a parsed row), for reading a row's identities without a dictionary.
IDENTITY_AT = tuple((kind, _AT[kind]) for kind in IDENTITY_FIELDS)
# Prefectures as codes (ISO 3166-2:JP, which Shopify exports as the province code) -> their names.
_PREFECTURE_NAMES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県",
    "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県",
    "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県",
    "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県",
    "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県",
    "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip
PREFECTURES = {f"jp-{i:02d}": name for i, name in enumerate(_PREFECTURE_NAMES, start=1)}
# Country names that CRM exports write where Kizuna keeps the ISO code (HubSpot's Country/Region says Japan).
COUNTRIES = {"japan": "JP", "日本": "JP", "united states": "US", "united states of america": "US", "usa": "US"}
