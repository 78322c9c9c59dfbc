"""normalize_phone's fast path gives what phonenumbers gives, down to which inputs fail and with what message."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from kizuna import normalize
from kizuna.errors import ValidationError
from kizuna.normalize import _fast_phone, normalize_phone, normalize_text

E164 = phonenumbers.PhoneNumberFormat.E164
FULL_WIDTH = str.maketrans("0123456789-+ ", "０１２３４５６７８９－＋\u3000")

# (national prefix digits, national length) of ordinary Japanese numbers: mobile, Tokyo, Osaka, Sapporo,
# free dial, navi dial, IP phone, toll-free 0800.
JP_ORDINARY = [
    ("090", 11),
    ("080", 11),
    ("070", 11),
    ("03", 10),
    ("06", 10),
    ("011", 10),
    ("0120", 10),
    ("0570", 10),
    ("050", 11),
    ("0800", 11),
]
# Prefixes whose parse does more than drop a national prefix: IDD, carrier codes, transform rules.
JP_ODD = ["00", "000", "0002", "0005", "003768", "0037680", "010", "01081", "0081", "81", "8109", "0"]
OTHER_REGIONS = {
    "US": [("202", 10), ("1202", 11), ("1800", 11), ("415", 10), ("011", 14)],
    "GB": [("020", 11), ("07700", 11), ("01481", 11), ("01624", 11), ("0800", 11), ("0044", 14), ("180020", 16)],
    "DE": [("030", 11), ("0151", 12), ("089", 10), ("0049", 13), ("0", 9)],
    "KR": [("010", 11), ("02", 10), ("031", 10), ("081", 12), ("0858", 14), ("001", 14), ("0082", 14)],
    "CN": [("138", 11), ("010", 11), ("021", 11), ("0755", 12), ("17951", 16), ("12593", 16), ("0086", 15)],
    # Regions sharing a calling code, where the fast path must not use another region's rules.
    "GG": [("01481", 11), ("07781", 11), ("0", 11)],
    "CA": [("416", 10), ("1416", 11), ("1202", 11)],
    "KZ": [("8701", 11), ("8727", 11), ("8495", 11)],
    # An IDD that starts with the national prefix (IL 01x), and a national prefix pattern capturing a carrier (CO).
    "IL": [("01919", 11), ("012", 11), ("02", 9), ("05", 10)],
    "CO": [("03", 11), ("0321", 11), ("0601", 11), ("0", 11)],
}


def _library(text: str | None, region: str) -> str | None:
    """What the plain library route gives: parse, is_valid_number, E.164; "INVALID" for a rejected number."""
    if text is None:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "INVALID"
    return phonenumbers.format_number(number, E164) if phonenumbers.is_valid_number(number) else "INVALID"


def _outcome(raw: str, region: str) -> tuple[str | None, str | None]:
    """(result, error message) from normalize_phone, so failures compare by message as well."""
    try:
        return normalize_phone(raw, region=region), None
    except ValidationError as exc:
        return "INVALID", exc.message


def _digits(rng: random.Random, size: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(max(size, 0)))


def _national(rng: random.Random, prefix: str, size: int) -> str:
    """A number with this prefix, usually of the right length, sometimes one or two digits short or long."""
    size += rng.choice([0, 0, 0, 0, 0, 0, -1, 1, -2, 2, -5])
    return prefix + _digits(rng, size - len(prefix))


def _written(rng: random.Random, digits: str) -> str:
    """The number as people type it: hyphens, spaces, full-width characters."""
    style = rng.randrange(6)
    if style == 1 and len(digits) > 4:
        cut = sorted(rng.sample(range(1, len(digits)), 2))
        digits = f"{digits[: cut[0]]}-{digits[cut[0] : cut[1]]}-{digits[cut[1] :]}"
    elif style == 2:
        digits = " ".join(digits[i : i + rng.randint(2, 4)] for i in range(0, len(digits), 3))
    elif style == 3 and len(digits) > 3:
        digits = f"{digits[:3]} - {digits[3:]}"
    if rng.random() < 0.2:
        digits = digits.translate(FULL_WIDTH)
    return digits


def _generated() -> list[tuple[str, str]]:
    rng = random.Random(20250117)
    cases: list[tuple[str, str]] = []
    for _ in range(2500):
        prefix, size = rng.choice(JP_ORDINARY)
        national = _national(rng, prefix, size)
        form = rng.randrange(5)
        if form == 1:
            national = "+81" + national[1:]
        elif form == 2:
            national = "+81 " + national[1:]
        elif form == 3:
            national = "+81 " + national  # the '+81 0 90' mistake
        cases.append((_written(rng, national), "JP"))
    for _ in range(800):
        prefix = rng.choice(JP_ODD)
        cases.append((_written(rng, prefix + _digits(rng, rng.randint(4, 12))), "JP"))
    for _ in range(800):
        plus = "+" if rng.random() < 0.3 else ""
        cases.append((_written(rng, plus + _digits(rng, rng.randint(1, 20))), "JP"))
    for region, shapes in OTHER_REGIONS.items():
        code = str(phonenumbers.country_code_for_region(region))
        for _ in range(300):
            prefix, size = rng.choice(shapes)
            national = _national(rng, prefix, size)
            form = rng.randrange(4)
            if form == 1:
                national = f"+{code}{national.removeprefix('0')}"
            elif form == 2:
                national = f"+{code} {national}"
            cases.append((_written(rng, national), region))
        # The library's own example numbers, with the last digits changed, in all its written forms.
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for _ in range(8):
                nsn = str(example.national_number)
                tail = rng.randint(1, 4)
                example.national_number = int(nsn[:-tail] + _digits(rng, tail))
                for fmt in (
                    E164,
                    phonenumbers.PhoneNumberFormat.NATIONAL,
                    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                ):
                    cases.append((phonenumbers.format_number(example, fmt), region))
    return cases


CASES = _generated()


def test_fast_path_matches_the_library_and_the_old_route(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(CASES) > 5000
    fast_results = []
    for raw, region in CASES:
        text = normalize_text(raw)
        fast_results.append((raw, region, _outcome(raw, region)))
        assert fast_results[-1][2][0] == _library(text, region), (raw, region)
        digits = text.replace("-", "").replace(" ", "")
        fast = _fast_phone(digits, region) if normalize._PLAIN_PHONE.fullmatch(text) else None
        if fast is not None:
            # The fast path may only answer where parsing the digits themselves gives that valid number.
            assert fast == _library(digits, region), (raw, region)

    # Without the fast path normalize_phone is what it was before; results and messages must not move.
    monkeypatch.setattr(normalize, "_fast_phone", lambda digits, region: None)
    normalize._plain_phone.cache_clear()
    for raw, region, outcome in fast_results:
        assert _outcome(raw, region) == outcome, (raw, region)
    normalize._plain_phone.cache_clear()


def test_fast_path_is_taken_for_ordinary_japanese_numbers() -> None:
    taken = 0
    for raw, region in CASES:
        text = normalize_text(raw)
        digits = text.replace("-", "").replace(" ", "")
        ordinary = region == "JP" and any(
            digits.startswith(prefix) or digits.startswith("+81" + prefix[1:]) for prefix, _ in JP_ORDINARY
        )
        if not ordinary or digits.startswith("+810") or _library(digits, "JP") == "INVALID":
            continue
        assert _fast_phone(digits, "JP") == _library(digits, "JP"), raw
        taken += 1
    assert taken > 500


def test_fast_path_agrees_with_parse_in_every_region() -> None:
    """Every region's example numbers, slightly changed, behind the prefixes parse() might read differently."""
    rng = random.Random(7)
    answered = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        code, prefix = str(metadata.country_code), metadata.national_prefix or ""
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            for tail in (0, 2):
                number = nsn[: len(nsn) - tail] + _digits(rng, tail)
                extra = _digits(rng, rng.randint(1, 3))
                for digits in {
                    prefix + number,
                    number,
                    code + number,
                    prefix + code + number,
                    prefix + extra + number,
                    f"+{code}{number}",
                    f"+{code}{prefix}{number}",
                    f"{prefix}10{number}",
                }:
                    fast = _fast_phone(digits, region)
                    if fast is not None:
                        assert fast == _library(digits, region), (digits, region)
                        answered += 1
    assert answered > 1000


@pytest.mark.parametrize(
    ("digits", "e164"),
    [
        ("09012345678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("0312345678", "+81312345678"),
        ("0120123456", "+81120123456"),
        ("05012345678", "+815012345678"),
    ],
)
def test_fast_path_answers_plain_numbers(digits, e164):
    assert _fast_phone(digits, "JP") == e164


@pytest.mark.parametrize(
    ("digits", "region"),
    [
        ("+8109012345678", "JP"),  # parse strips the 0 after +81
        ("003768090123456", "JP"),  # carrier code
        ("000212345", "JP"),  # transform rule
        ("0101202555012", "JP"),  # IDD
        ("0090123456", "JP"),  # leading zero after the prefix
        ("0901234567", "JP"),  # too short: invalid, left to the full parse for its message
        ("0" + "9" * 5000, "JP"),
        ("12025550123", "US"),  # starts with the calling code
        ("2025550123", "US"),  # no national prefix
        ("0812345678901", "KR"),  # carrier code captured by the national prefix pattern
        ("03211234567", "CO"),  # the same in Colombia, where the rest would be valid too
        ("01919123093", "IL"),  # IL's IDD 019 begins with its national prefix
        ("09012345678", "XX"),
        ("09012345678", "jp"),
    ],
)
def test_fast_path_leaves_unusual_numbers_to_the_full_parse(digits, region):
    assert _fast_phone(digits, region) is None


def test_very_long_input_still_fails_as_before():
    with pytest.raises(ValidationError):
        normalize_phone("0" + "9" * 5000)
