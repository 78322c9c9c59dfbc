"""CSV files read in byte ranges by worker processes give exactly what the sequential reader gives."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from kizuna.auth.permissions import Actor
from kizuna.imports import reader, runner
from kizuna.imports.reader import ByteRange, RangeMisaligned, Record, Source, open_source, range_records, records
from kizuna.imports.report import Reason
from kizuna.imports.runner import importer_for, run_import
from tests.conftest import clean

SYSTEM = Actor.system("test")
HEADER = "会員ID,姓,名,メールアドレス,住所,メモ"
# Range sizes from smaller than a row (most cuts refused, the splitter gives up and reads sequentially) to
# bigger than the file (one range).
SIZES = [1, 7, 16, 33, 50, 64, 100, 128, 257, 1000, 100_000]


def _write(tmp_path: Path, text: str, encoding: str = "utf-8", name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _source(path: Path) -> Source:
    return open_source(path, importer_for("customers").columns)


@dataclasses.dataclass
class Ranged:
    records: list[Record]
    errors: list[tuple[int, str]]
    ranges: int = 0  # read by range_records
    fallbacks: int = 0  # misaligned ranges (a stray quote fooled the split)
    gave_up: int = 0  # open-ended ranges (no safe cut found)


def _read_in_ranges(source: Source, range_bytes: int) -> Ranged:
    """What the runner does with a pool, in this process: ranges until one misaligns, then sequential."""
    out = Ranged([], [])
    for piece in reader.split_csv(source.path, range_bytes):
        if piece.end is None:
            out.gave_up += 1
            return _rest(out, source, piece)
        got: list[Record] = []
        errors: list[tuple[int, str]] = []
        try:
            got.extend(range_records(source, piece, errors))
        except RangeMisaligned:
            out.fallbacks += 1
            return _rest(out, source, piece)
        out.ranges += 1
        out.records.extend(got)
        out.errors.extend(errors)
    return out


def _rest(out: Ranged, source: Source, piece: ByteRange) -> Ranged:
    stream = records(source, errors=out.errors)
    out.records.extend(stream.resume_at(piece))
    return out


def _misaligned(source: Source, piece: ByteRange) -> bool:
    try:
        list(range_records(source, piece, []))
    except RangeMisaligned:
        return True
    return False


def _sequential(source: Source) -> tuple[list[Record], list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    return list(records(source, errors=errors)), errors


def _assert_same_in_every_size(path: Path, sizes: list[int] = SIZES) -> list[Ranged]:
    source = _source(path)
    assert records(source, errors=[]).splittable
    expected, expected_errors = _sequential(source)
    results = []
    for size in sizes:
        got = _read_in_ranges(source, size)
        assert got.records == expected, f"range size {size}"
        assert got.errors == expected_errors, f"range size {size}"
        results.append(got)
    # The splitting really happened: some size cut the file into several ranges read by "workers".
    assert max(r.ranges for r in results) > 3
    return results


def _rows(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"C-{i},髙橋{i},花子,hanako{i}@example.jp,神宮前①丁目～{i},メモ{i}"


def test_plain_utf8(tmp_path):
    path = _write(tmp_path, "\n".join([HEADER, *_rows(40)]) + "\n")
    results = _assert_same_in_every_size(path)
    assert all(r.fallbacks == 0 for r in results)


def test_utf8_with_bom_and_zero_width_no_break_space_later_on(tmp_path):
    # Only the file's first bytes are a byte-order mark; a U+FEFF starting a later range is data.
    rows = [f"\ufeffC-{i},\ufeff姓{i},名,x{i}@example.jp,,\ufeff" for i in range(30)]
    path = _write(tmp_path, "\n".join([HEADER, *rows]) + "\n", encoding="utf-8-sig")
    source = _source(path)
    assert source.encoding == "utf-8-sig" and source.headers[0] == "会員ID"
    _assert_same_in_every_size(path)
    assert _sequential(source)[0][0].values["external_id"] == "\ufeffC-0"


def test_cp932_japanese_text(tmp_path):
    rows = [f"C-{i},髙橋,表{i},x{i}@example.jp,神宮前①丁目～ソ{i},能力" for i in range(40)]
    path = _write(tmp_path, "\r\n".join([HEADER, *rows]) + "\r\n", encoding="cp932")
    assert _source(path).encoding == "cp932"
    _assert_same_in_every_size(path)
    first = _sequential(_source(path))[0][0]
    assert first.values["family_name"] == "髙橋" and first.values["address_line"] == "神宮前①丁目～ソ0"


def test_quoted_fields_with_newlines_commas_and_doubled_quotes(tmp_path):
    rows = []
    for i in range(30):
        rows.append(f'C-{i},"山田, {i}",太郎,"t{i}@example.jp","東京都\n渋谷区 ""{i}""\n\n神宮前",')
        rows.append(f'D-{i},"""引用""",名,d{i}@example.jp,"a\r\nb\rc","x,y"')
    path = _write(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    results = _assert_same_in_every_size(path, [*SIZES, *range(20, 90, 3)])
    assert all(r.fallbacks == 0 for r in results)
    expected, _ = _sequential(_source(path))
    assert [r.line for r in expected[:4]] == [2, 6, 9, 13]
    assert expected[0].values["address_line"] == '東京都\n渋谷区 "0"\n\n神宮前'


def test_quoted_multi_line_header(tmp_path):
    path = _write(
        tmp_path, '"会員\nID",姓,"メール\nアドレス"\n' + "\n".join(f"C-{i},姓,m{i}@example.jp" for i in range(30))
    )
    source = _source(path)
    assert source.mapping == {"会員\nID": "external_id", "姓": "family_name", "メール\nアドレス": "email"}
    expected, _ = _sequential(source)
    assert expected[0].line == 4
    for size in SIZES:
        assert _read_in_ranges(source, size).records == expected


def test_stray_quote_fools_the_parity_and_falls_back(tmp_path):
    # csv keeps ab"c literally, so after it every newline has an odd quote count before it, except the one
    # inside the next quoted field: a cut there would end a range inside that field.
    rows = [*_rows(10), 'S-1,ab"c,名,s@example.jp,,', *_rows(3)]
    rows += [f'Q-{i},姓,名,q{i}@example.jp,"東京都\n渋谷区",' for i in range(10)] + list(_rows(5))
    path = _write(tmp_path, "\n".join([HEADER, *rows]) + "\n")
    results = _assert_same_in_every_size(path, [*SIZES, *range(20, 400, 7)])
    assert any(r.fallbacks for r in results)
    expected, _ = _sequential(_source(path))
    assert expected[10].values["family_name"] == 'ab"c'


def test_blank_lines_and_rows_with_too_many_cells(tmp_path):
    rows = []
    for i in range(20):
        rows += [
            f"C-{i},姓,名,c{i}@example.jp,,",
            "",
            " , ,",
            f"X-{i},姓,名,x{i}@example.jp,,,extra",
            f"E-{i},姓,名,,,,,,",
        ]
    path = _write(tmp_path, "\n".join([HEADER, *rows]) + "\n\n\n")
    _assert_same_in_every_size(path)
    expected, errors = _sequential(_source(path))
    too_wide = Reason(
        "the row has 7 cells but the header has 6", "error.import_too_many_cells", {"cells": 7, "width": 6}
    )
    assert errors[0] == (5, too_wide)
    assert len(errors) == 20 and len(expected) == 40


def test_no_trailing_newline_and_crlf(tmp_path):
    crlf = _write(tmp_path, "\r\n".join([HEADER, *_rows(30)]), name="crlf.csv")
    _assert_same_in_every_size(crlf)
    assert _sequential(_source(crlf))[0][-1].values["external_id"] == "C-29"
    # A lone \r ends a line too (as for a file opened with newline=""), so line numbers count it.
    mixed = _write(tmp_path, HEADER + "\r" + "\n".join(_rows(10)) + "\r\n" + "\r".join(_rows(10)), name="mixed.csv")
    _assert_same_in_every_size(mixed)
    assert [r.line for r in _sequential(_source(mixed))[0]][-2:] == [20, 21]


def test_unterminated_quote_at_end_of_file(tmp_path):
    path = _write(tmp_path, "\n".join([HEADER, *_rows(20), 'C-x,"姓,名\n', *_rows(3)]))
    _assert_same_in_every_size(path)


def test_only_some_encodings_split(tmp_path):
    path = _write(tmp_path, "\n".join([HEADER, *_rows(3)]) + "\n", encoding="utf-16")
    assert not records(_source(path), errors=[]).splittable
    jsonl = _write(tmp_path, '{"email": "a@example.jp"}\n', name="data.jsonl")
    assert not records(_source(jsonl), errors=[]).splittable
    utf8 = _write(tmp_path, "\n".join([HEADER, *_rows(3)]) + "\n")
    # Without an error list read errors would vanish sequentially but be reported from ranges.
    assert not records(_source(utf8)).splittable


def test_run_import_with_workers_reports_like_one_process(db, tmp_path, monkeypatch):
    rows = []
    for i in range(60):
        rows.append(f'C-{i},"高橋, {i}",花子,h{i}@example.jp,"東京都\n渋谷区",メモ')
        if i % 7 == 0:
            rows += ["", f"X-{i},姓,名,x{i}@example.jp,,,extra"]
        if i % 9 == 0:
            rows.append(f"B-{i},姓,名,not-an-email-{i},,")
        if i % 11 == 0:
            rows.append(f"D-{i},姓,名,H{i}@EXAMPLE.JP,,")  # the same person again
        if i == 45:
            rows.append('S-1,ab"c,名,s@example.jp,,')  # fools the split: the rest is read sequentially
    path = _write(tmp_path, "\r\n".join([HEADER, *rows]) + "\r\n")
    one = run_import(db, "customers", path, actor=SYSTEM, workers=1, batch_size=7, report_path=tmp_path / "one.csv")
    stored_by_one = _stored(db)
    clean(db)

    pieces: list[ByteRange] = []

    def spy(path: Path, range_bytes: int | None = None) -> Iterator[ByteRange]:
        for piece in reader.split_csv(path, range_bytes):
            pieces.append(piece)
            yield piece

    monkeypatch.setattr(reader, "CSV_RANGE_BYTES", 300)
    monkeypatch.setattr(runner, "split_csv", spy)
    two = run_import(db, "customers", path, actor=SYSTEM, workers=2, batch_size=7, report_path=tmp_path / "two.csv")
    assert len(pieces) > 10
    assert any(_misaligned(_source(path), piece) for piece in pieces if piece.end is not None)
    # A repeated person is folded into its batch (duplicate) or updates the customer an earlier batch stored
    # (updated): which one depends on where batches end, and staged ranges end elsewhere than 7-row batches.
    split = ("updated", "duplicates")
    assert {k: v for k, v in two.counts().items() if k not in split} == {
        k: v for k, v in one.counts().items() if k not in split
    }
    assert two.updated + two.duplicates == one.updated + one.duplicates
    assert _stored(db) == stored_by_one
    assert (one.read, one.rejected) == (60 + 9 + 7 + 6 + 1, 9 + 7)
    assert sorted(two.rejects, key=lambda r: (r.line, r.field)) == sorted(one.rejects, key=lambda r: (r.line, r.field))
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


def _stored(db) -> list[tuple]:
    from sqlalchemy import text

    with db.connect() as connection:
        query = "SELECT external_id, email, family_name, given_name, city FROM customers ORDER BY email"
        return [tuple(row) for row in connection.execute(text(query))]


@pytest.mark.parametrize("misaligned", [False, True])
def test_parse_range_returns_none_when_misaligned(tmp_path, misaligned):
    from kizuna.imports.importer import ImportOptions, Rejected

    quote = '"' if misaligned else ""
    path = _write(tmp_path, "\n".join([HEADER, *_rows(3), "X-1,姓,名,x@example.jp,,,extra", f"C-9,{quote}姓"]) + "\n")
    source = _source(path)
    piece = ByteRange(0, path.stat().st_size, 1)
    result = runner.parse_range("customers", ImportOptions(file_name=path.name), source, piece)
    if misaligned:
        assert result is None
    else:
        assert result is not None and len(result) == 5
        too_wide = Reason(
            "the row has 7 cells but the header has 6", "error.import_too_many_cells", {"cells": 7, "width": 6}
        )
        assert result[3] == Rejected(5, [("row", too_wide)])
