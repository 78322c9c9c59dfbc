"""Which columns a customer file may have: each field with the header names it is recognised by.

Adding a customer field to imports means adding one entry here (beside the model, the migration and the
schema): parsing, staging and writing take their lists of fields from ``WRITTEN`` and ``FIELDS``.
"""

from __future__ import annotations

from kizuna.customers.service import IDENTITY_FIELDS
from kizuna.imports.reader import Columns

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
    ),
    "email": ("メールアドレス", "メール", "Eメール", "e-mail", "mail", "email address", "mail address"),
    "phone": ("電話番号", "電話", "携帯電話", "携帯電話番号", "携帯番号", "TEL", "telephone", "phone number", "mobile"),
    "family_name": ("姓", "苗字", "名字", "氏", "last name", "surname", "family name"),
    "given_name": ("名", "first name", "given name"),
    "family_name_kana": (
        "セイ",
        "せい",
        "姓(カナ)",
        "姓カナ",
        "姓(フリガナ)",
        "姓フリガナ",
        "姓(ふりがな)",
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
        "first name kana",
    ),
    "birth_date": ("生年月日", "誕生日", "birthday", "date of birth", "dob"),
    "gender": ("性別", "sex"),
    "postal_code": ("郵便番号", "〒", "zip", "zip code", "postcode"),
    "prefecture": ("都道府県", "state"),
    "city": ("市区町村", "市町村"),
    "address_line": ("住所", "番地", "住所1", "address", "address1", "street"),
    "country": ("国", "国コード", "country code"),
    "source": ("流入元", "登録経路"),
    "tags": ("タグ", "tag"),
    "email_opt_in": (
        "メール配信許諾",
        "メール配信",
        "メール配信希望",
        "メルマガ",
        "メルマガ配信",
        "newsletter",
        "email consent",
    ),
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
COLUMNS = Columns(aliases=ALIASES, required=[IDENTITY_FIELDS])
# The columns an import fills; the rest (owner, stage, locale...) are the CRM's own.
WRITTEN = tuple(f for f in ALIASES if f not in ("tags", "email_opt_in", "full_name", "full_name_kana"))
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
