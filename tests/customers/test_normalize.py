"""Japanese data on the way in: width, kana, e-mails and +81 phones."""

from __future__ import annotations

import pytest

from kizuna.customers.normalize import full_name, normalize_email, normalize_kana, normalize_phone, normalize_text
from kizuna.errors import ValidationError


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("０９０－１２３４－５６７８", "+819012345678"),
        ("090-1234-5678", "+819012345678"),
        ("03-1234-5678", "+81312345678"),
        ("+81 90 1234 5678", "+819012345678"),
        ("0120-123-456", "+81120123456"),
        ("050-1234-5678", "+815012345678"),
    ],
)
def test_japanese_phone_numbers_become_e164(raw, e164):
    assert normalize_phone(raw) == e164


def test_invalid_phone_names_the_field():
    with pytest.raises(ValidationError) as err:
        normalize_phone("12-34", field="tel")
    assert err.value.field == "tel"
    assert "12-34" in err.value.message


def test_emails_are_trimmed_case_folded_and_validated():
    assert normalize_email("  Hanako.SATO@Example.CO.JP ") == "hanako.sato@example.co.jp"
    assert normalize_email("ｈａｎａｋｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "hanako@example.jp"
    with pytest.raises(ValidationError):
        normalize_email("hanako@")


def test_width_and_kana_are_normalised():
    assert normalize_text("ﾔﾏﾀﾞ\u3000ﾀﾛｳ ") == "ヤマダ タロウ"
    assert normalize_text("ＡＢＣ１２３") == "ABC123"
    assert normalize_kana("やまだ") == "ヤマダ"
    assert normalize_kana("ﾔﾏﾀﾞ") == "ヤマダ"


def test_full_name_order_follows_the_name():
    assert full_name("山田", "太郎") == "山田 太郎"
    assert full_name("Smith", "Anna") == "Anna Smith"
