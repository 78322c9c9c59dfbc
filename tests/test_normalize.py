"""Japanese data on the way in: width, kana, e-mails and +81 phones."""

from __future__ import annotations

import pytest

from kizuna.errors import ValidationError
from kizuna.normalize import full_name, normalize_email, normalize_kana, normalize_phone, normalize_text


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


def _library_email(raw: str) -> str | None:
    """What normalize_email gave before its fast path: email_validator on every address."""
    from email_validator import EmailNotValidError, validate_email

    text = normalize_text(raw)
    if text is None:
        return None
    try:
        return validate_email(text, check_deliverability=False).normalized.casefold()
    except EmailNotValidError:
        return "INVALID"


def _varied_emails() -> list[str]:
    import random

    rng = random.Random(7)
    locals_ = [
        "hanako",
        "Hanako.Sato",
        "TARO",
        "a",
        "a.b.c",
        "a..b",
        ".a",
        "a.",
        "a b",
        "x+tag",
        "o'brien",
        "!#$%&'*+-/=?^_`{|}~",
        '"quoted"',
        '"quo ted"',
        "info",
        "Postmaster",
        "ｈａｎａｋｏ",
        "花子",
        "ü.ser",
        "a" * 64,
        "a" * 65,
        "a" * 200,
        "",
        "a(comment)",
        "a\\b",
        "a,b",
        "a<b",
        "a>b",
        "a[b]",
        "a;b",
        "a:b",
    ]
    domains = [
        "example.jp",
        "Example.CO.JP",
        "ｅｘａｍｐｌｅ．ｊｐ",
        "mail.example.com",
        "example",
        "localhost",
        "example.test",
        "example.invalid",
        "example.localhost",
        "example.local",
        "example.onion",
        "例え.jp",
        "例え.テスト",
        "XN--R8JZ45G.JP",
        "xn--r8jz45g.jp",
        "bücher.de",
        "exa_mple.com",
        "-example.com",
        "example-.com",
        "example..com",
        ".example.com",
        "example.com.",
        "[192.0.2.1]",
        "192.0.2.1",
        "a" * 63 + ".com",
        "a" * 64 + ".com",
        ".".join(["a" * 60] * 4) + ".jp",
        "ex ample.com",
        "example.com>",
        "b@example.jp",
        "",
        "1.2.3.jp",
        "xn--.jp",
        "ＥＸＡＭＰＬＥ．ＣＯＭ",
    ]
    out = [f"{local}@{domain}" for local in locals_ for domain in domains]
    out += ["plainaddress", "@example.jp", "a@", "a@@example.jp", "<a@example.jp>", "Name <a@example.jp>"]
    out += ["hanako＠example.jp", "  spaced@example.jp  ", "tab\t@example.jp", "ＨＡＮＡＫＯ＠ＥＸＡＭＰＬＥ．ＪＰ"]
    out += [f"{'b' * rng.randint(1, 64)}@{'c' * rng.randint(1, 63)}.{'d' * rng.randint(1, 63)}.jp" for _ in range(60)]
    return out


def test_email_fast_path_agrees_with_email_validator():
    addresses = _varied_emails()
    assert len(addresses) > 500
    valid = 0
    for raw in addresses:
        expected = _library_email(raw)
        try:
            got = normalize_email(raw)
        except ValidationError:
            got = "INVALID"
        assert got == expected, raw
        valid += expected != "INVALID"
    # Both kinds were exercised, and again through the warm domain cache.
    assert 100 < valid < len(addresses) - 100
    for raw in addresses:
        try:
            assert normalize_email(raw) == _library_email(raw), raw
        except ValidationError:
            assert _library_email(raw) == "INVALID", raw


def test_invalid_email_message_comes_from_email_validator():
    for raw, reason in [
        ("a@example.test", "special-use or reserved name"),
        ("a..b@example.jp", "period"),
        ("a@localhost", "should have a period"),
    ]:
        with pytest.raises(ValidationError) as err:
            normalize_email(raw, field="mail")
        assert err.value.field == "mail"
        assert raw in err.value.message and reason in err.value.message


def test_phone_cache_agrees_with_phonenumbers():
    import phonenumbers

    numbers = ["09012345678", "0312345678", "0501234567", "0120123456", "08000000000", "0312", "0901234567890"]
    numbers += ["+819012345678", "+81312345678", "+12025550123", "+999123", "0612345678", "+81 0 90 1234 5678"]
    variants = []
    for number in numbers:
        variants += [number, number.replace("0", "0-", 1), " ".join(number), number[:3] + " - " + number[3:]]
    for raw in variants + [v.replace("-", "－") for v in variants]:
        text = normalize_text(raw)
        try:
            parsed = phonenumbers.parse(text, "JP")
            expected = (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                if phonenumbers.is_valid_number(parsed)
                else "INVALID"
            )
        except phonenumbers.NumberParseException:
            expected = "INVALID"
        for _ in range(2):  # cold, then from the cache
            try:
                got = normalize_phone(raw)
            except ValidationError as exc:
                got = "INVALID"
                assert text in exc.message
            assert got == expected, raw
