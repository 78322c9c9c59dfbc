"""The platforms' own worked examples, reproduced (docs/audiences.md pins which page and version each is from)."""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata

from kizuna.audiences import formats as f
from kizuna.normalize import normalize_phone


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- Meta: customer-information-parameters page (updated Jan 9, 2026) --------------------------------------


def test_meta_email_example():
    assert f.meta_email("John_Smith@gmail.com") == "john_smith@gmail.com"
    assert f.sha256_hex("john_smith@gmail.com") == "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"


def test_meta_phone_example_is_digits_with_country_code_and_no_plus():
    e164 = normalize_phone("(650)555-1212", region="US")
    assert e164 == "+16505551212"
    assert f.meta_phone(e164) == "16505551212"
    assert f.sha256_hex("16505551212") == "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"


def test_meta_first_name_examples_keep_their_script():
    assert f.sha256_hex(f.meta_name("Mary")) == "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
    assert f.sha256_hex(f.meta_name("정")) == "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"
    assert f.meta_name("Valéry") == "valéry"
    assert f.sha256_hex(f.meta_name("Valéry")) == "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"


def test_meta_country_example():
    assert f.meta_country("US") == "us"
    assert f.sha256_hex("us") == "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"


def test_meta_zip_city_and_state_rules():
    assert f.meta_zip("94035-1234", "US") == "94035"
    assert f.meta_zip("M1 1AE", "GB") == "m11ae"
    assert f.meta_zip("150-0002", "JP") == "1500002"
    assert f.meta_city("New York") == "newyork"
    assert f.meta_city("渋谷区") == "渋谷区"
    assert f.meta_state("AZ") == "az"


def test_meta_japanese_phone_loses_the_plus_and_keeps_81():
    assert f.meta_phone(normalize_phone("090-1234-5678")) == "819012345678"


# --- Google: Data Manager API "Format user data" page ------------------------------------------------------


def test_google_gmail_rule_examples():
    assert f.google_email("cloudy.sanfrancisco+shopping@gmail.com") == "cloudysanfrancisco@gmail.com"
    assert f.google_email("Jane.Doe@GoogleMail.com") == "janedoe@googlemail.com"
    # Other domains keep their dots and plus signs.
    assert f.google_email("user.name+NYC@Example.com") == "user.name+nyc@example.com"
    assert f.google_email(" j doe@example.com ") == "jdoe@example.com"


def test_google_phone_example_is_e164_with_plus():
    e164 = normalize_phone("(800)555-0100", region="US")
    assert f.google_phone(e164) == "+18005550100"
    assert f.google_phone(normalize_phone("０９０－１２３４－５６７８")) == "+819012345678"


def test_google_names_lowercase_trimmed_and_country_zip_in_clear():
    assert f.google_name("  Mary  Ann ") == "mary ann"
    assert f.google_country("jp") == "JP"
    row = f.GOOGLE.row(f.Person(given_name="Mary", family_name="Smith", country="US", postal_code="94043"))
    assert row == {
        "First Name": sha("mary"),
        "Last Name": sha("smith"),
        "Country": "US",
        "Zip": "94043",
    }


# --- Japanese names: UTF-8, NFC, never reduced to a-z --------------------------------------------------------


def test_japanese_names_keep_their_characters_in_nfc():
    decomposed = unicodedata.normalize("NFD", "ヤマガタ")  # ガ as カ + combining dakuten
    assert decomposed != "ヤマガタ"
    assert f.google_name(decomposed) == "ヤマガタ"
    assert f.meta_name(decomposed) == "ヤマガタ"
    assert f.meta_name("山田") == "山田"
    assert f.sha256_hex(f.meta_name("山田")) == sha("山田")
    # The middle dot between a foreign given and family name is punctuation for Meta.
    assert f.meta_name("ジョン・スミス") == "ジョンスミス"


def test_google_drops_a_partial_address_and_meta_keeps_what_it_can_match():
    person = f.Person(email="a@example.com", given_name="太郎", family_name="山田", postal_code="150-0002")
    assert set(f.GOOGLE.row(person)) == {"Email"}  # no country: the address cannot be matched, so it stays home
    with_country = dataclasses.replace(person, country="JP")
    assert f.GOOGLE.row(with_country)["Zip"] == "150-0002"
    assert f.GOOGLE.row(with_country)["Last Name"] == sha("山田")
    assert set(f.META.row(person)) == {"EMAIL", "FN", "LN", "ZIP"}
    assert f.META.row(f.Person(given_name="太郎")) is None
    assert f.GOOGLE.row(f.Person(given_name="太郎")) is None


def test_no_clear_personal_value_in_any_hashed_column():
    person = f.Person(
        email="Taro.Yamada@gmail.com",
        phone="+819012345678",
        given_name="太郎",
        family_name="山田",
        city="渋谷区",
        prefecture="東京都",
        postal_code="150-0002",
        country="JP",
    )
    for platform in (f.GOOGLE, f.META):
        row = platform.row(person)
        for column in platform.columns:
            if column.hashed and column.header in row:
                assert len(row[column.header]) == 64 and all(c in "0123456789abcdef" for c in row[column.header])
