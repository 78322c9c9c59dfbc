"""Reading an import file: its encoding, its header mapped onto Kizuna fields, and its records with line numbers."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kizuna.errors import KizunaError
from kizuna.imports.report import REPORT_COLUMNS, Reason

# Shift_JIS is read as its Windows superset: plain shift_jis fails on ①, ～ and 髙, which Japanese files contain.
JAPANESE_ENCODINGS = ("cp932", "euc_jp", "iso2022_jp")
_CHUNK = 1 << 20
_IGNORED_IN_HEADERS = re.compile(r"[\s_\-・]+")
# Encodings in which the bytes \r, \n and " only ever stand for themselves (never inside a multi-byte character),
# so a CSV file in them can be cut into byte ranges that decode and parse on their own. Not UTF-16 (either byte of
# a code unit may be 0x0A or 0x22) nor ISO-2022-JP (kanji are pairs of ASCII bytes, " among them).
SPLITTABLE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "cp932", "euc_jp"})
# Bytes per range handed to a worker process: big enough that splitting costs the main process next to nothing
# per row, small enough that workers have results ready soon and ranges in flight stay a few MB.
CSV_RANGE_BYTES = 1 << 20
# A range that finds no safe cut in this many ranges' worth of bytes (a stray quote, a huge quoted field) is left
# to the sequential reader rather than grown without bound.
_MAX_RANGE_FACTOR = 16
# Appended after a range's text as one more line: if the csv reader does not give it back as the last row on its
# own, the range ended inside a quoted field. Private-use characters; a range whose text contains it is read
# sequentially instead, so the row can only be the appended line.
_END_OF_RANGE = "\ue000kizuna:end-of-range\ue000"
_LONE_CR = re.compile(rb"\r(?!\n)")


class ImportFileError(KizunaError):
    """The file cannot be imported at all (encoding, header, mapping); nothing was written."""

    code = "import_file"


@dataclass(frozen=True)
class Record:
    """One data row: its physical line in the file (header = line 1), mapped values and unmapped extras.

    Empty cells are left out, so an empty cell can never erase a stored value.
    """

    line: int
    values: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        # Records travel to parser processes by the hundred thousand: positional arguments pickle cheapest.
        return Record, (self.line, self.values, self.extras)


@dataclass
class Columns:
    """What an importer accepts: field -> header aliases, and the fields that must be present."""

    aliases: Mapping[str, Sequence[str]]
    # Each group needs at least one mapped column, e.g. (("customer_external_id", "customer_email", ...),).
    required: Sequence[Sequence[str]] = ()
    # Header names a field takes only when the file has none of its aliases: shop exports carry two columns
    # for one field (EC-CUBE's 注文ID and 注文番号, 商品コード and 商品ID), and the other one is then ignored.
    # Earlier names win over later ones.
    fallbacks: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # An unmapped header that stands in for the required groups (a customers file whose only way to recognise
    # people is a LINE user id column).
    also_required_by: Callable[[str], object] | None = None
    # Columns named ``attributes.<key>`` (or mapped to it) fill a custom field of the record (kizuna/fields).
    custom_attributes: bool = False


# ``attributes.<key>`` as a column's target: the key of a custom field (see kizuna/fields/schemas.py).
CUSTOM_TARGET = re.compile(r"attributes\.[a-z][a-z0-9_]{0,63}")


@dataclass
class Source:
    path: Path
    format: str
    encoding: str
    headers: list[str]
    mapping: dict[str, str]  # header -> field
    unmapped: list[str]  # headers that map to no field
    line_estimate: int
    # JSON Lines only: normalised key -> field, for keys first seen after the sampled lines.
    key_index: dict[str, str] = field(default_factory=dict)


def header_key(header: str) -> str:
    """Headers compare NFKC-normalised, case-folded, ignoring spaces, underscores and hyphens."""
    return _IGNORED_IN_HEADERS.sub("", unicodedata.normalize("NFKC", header)).casefold()


def detect_encoding(path: Path) -> tuple[str, int]:
    """(encoding, number of newlines): BOM, then strict UTF-8, then strict CP932, then a Japanese-only detector."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "cp932")
    for encoding in candidates:
        lines = _decodes_strictly(path, encoding)
        if lines is not None:
            if encoding == "utf-8" and _looks_iso2022(path):
                return "iso2022_jp", lines
            return encoding, lines
    if candidates[0] in ("utf-8-sig", "utf-16"):
        raise ImportFileError(
            f"{path.name}: the file starts with a {candidates[0]} byte-order mark but does not decode"
        )
    from charset_normalizer import from_bytes

    with path.open("rb") as fh:
        sample = fh.read(_CHUNK)
    best = from_bytes(sample, cp_isolation=list(JAPANESE_ENCODINGS)).best()
    if best is not None:
        lines = _decodes_strictly(path, best.encoding)
        if lines is not None:
            return best.encoding, lines
    raise ImportFileError(
        f"{path.name}: cannot tell the file's encoding (tried UTF-8, CP932/Shift_JIS, EUC-JP, ISO-2022-JP); "
        "save it as UTF-8 and import again",
        key="error.import_unknown_encoding",
        params={"file": path.name},
    )


def _given_encoding(path: Path, name: str) -> tuple[str, int]:
    """(codec, number of newlines) for an encoding the user named, or an ImportFileError saying where it fails."""
    try:
        codec = codecs.lookup(name.strip()).name
    except LookupError:
        raise ImportFileError(f"unknown encoding '{name}' (for example utf-8, cp932, euc_jp, latin-1)") from None
    # Shift_JIS files from Windows use the CP932 characters (①, ～, 髙) that plain shift_jis cannot decode.
    if codec in ("shift_jis", "shift-jis"):
        codec = "cp932"
    if codec == "utf-8" and path.read_bytes()[:3] == codecs.BOM_UTF8:
        codec = "utf-8-sig"
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    lines = 0
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(_CHUNK):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line = lines + chunk[: max(exc.start, 0)].count(b"\n") + 1
                    raise ImportFileError(
                        f"{path.name}: line {line} does not decode as {codec} ({exc.reason}); "
                        "check the file's encoding or leave --encoding out to detect it"
                    ) from None
                lines += chunk.count(b"\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"{path.name}: the file ends inside a character in {codec} ({exc.reason})") from None
    return codec, lines


def _decodes_strictly(path: Path, encoding: str) -> int | None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0
    with path.open("rb") as fh:
        try:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
                lines += chunk.count(b"\n")
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
    return lines


def _looks_iso2022(path: Path) -> bool:
    with path.open("rb") as fh:
        sample = fh.read(_CHUNK)
    return sample.isascii() and b"\x1b$" in sample


def map_headers(
    headers: Sequence[str], columns: Columns, overrides: Mapping[str, str] | None, *, synonyms_ok: bool = False
) -> dict[str, str]:
    """header -> field, from the aliases and ``--map`` overrides; fatal errors name the offending header.

    ``synonyms_ok`` lets two headers name one field (JSON Lines, where each object picks its own keys).
    """
    # A field's own name always wins over another field's alias ("customer_id" vs "customer id").
    alias_index: dict[str, str] = {header_key(name): name for name in columns.aliases}
    for name, aliases in columns.aliases.items():
        for alias in aliases:
            alias_index.setdefault(header_key(alias), name)
    fallback_keys = {header_key(alias) for aliases in columns.fallbacks.values() for alias in aliases}
    override_keys = {header_key(h) for h in overrides or {}}
    seen: dict[str, int] = {}
    for index, header in enumerate(headers, start=1):
        if not header.strip():
            continue
        key = header_key(header)
        if header.strip() in seen and (key in alias_index or key in fallback_keys or key in override_keys):
            raise ImportFileError(
                f"duplicate header '{header.strip()}' (columns {seen[header.strip()]} and {index}); "
                "rename one of them or remove it",
                key="error.import_duplicate_header",
                params={"header": header.strip(), "first": seen[header.strip()], "second": index},
            )
        # Two columns of one name that Kizuna does not read (EC-CUBE's order export has two 送料) are ignored.
        seen.setdefault(header.strip(), index)
    by_key = {header_key(h): h for h in headers if h.strip()}
    mapping: dict[str, str] = {}
    chosen: set[str] = set()
    for raw_header, target in (overrides or {}).items():
        header = by_key.get(header_key(raw_header))
        if header is None:
            raise ImportFileError(f"--map names column '{raw_header}', which the file does not have")
        target = target.strip()
        if target in ("", "-"):
            chosen.add(header)
            continue
        if target not in columns.aliases and not (columns.custom_attributes and CUSTOM_TARGET.fullmatch(target)):
            allowed = ", ".join(sorted(columns.aliases))
            allowed += ", attributes.<key>" if columns.custom_attributes else ""
            raise ImportFileError(f"--map '{raw_header}={target}': unknown field '{target}'; fields: {allowed}")
        mapping[header] = target
        chosen.add(header)
    for header in headers:
        if header in chosen or not header.strip():
            continue
        target = alias_index.get(header_key(header))
        if target is None and columns.custom_attributes and CUSTOM_TARGET.fullmatch(header.strip()):
            target = header.strip()
        if target is not None:
            mapping[header] = target
    by_field: dict[str, str] = {}
    for header, target in mapping.items():
        if target in by_field and not synonyms_ok:
            raise ImportFileError(
                f"columns '{by_field[target]}' and '{header}' both map to field '{target}'; "
                f'choose one with --map "{header}=-"',
                key="error.import_two_columns_one_field",
                params={"first": by_field[target], "second": header, "field": target},
            )
        by_field[target] = header
    for target, aliases in columns.fallbacks.items():
        if target in by_field:
            continue
        for alias in aliases:
            header = by_key.get(header_key(alias))
            if header is not None and header not in chosen and header not in mapping:
                mapping[header] = by_field[target] = target
                break
    missing = [group for group in columns.required if not any(f in by_field for f in group)]
    stand_in = columns.also_required_by
    if missing and stand_in is not None and any(stand_in(h) for h in headers if h not in mapping):
        missing = []
    if missing:
        described = "; ".join(_describe_group(group, columns) for group in missing)
        # The UI names the missing field by the header a Japanese file would use for it (its first alias).
        headers_for = " / ".join(
            "・".join(next(iter(columns.aliases.get(f, ())), f) for f in group) for group in missing
        )
        raise ImportFileError(
            f"missing required column: {described}",
            key="error.import_missing_column",
            params={"fields": " / ".join(" or ".join(g) for g in missing), "headers": headers_for},
        )
    return mapping


def _describe_group(group: Sequence[str], columns: Columns) -> str:
    names = " or ".join(group)
    examples = [a for f in group for a in list(columns.aliases.get(f, ()))[:2]]
    return f"{names} (headers such as {', '.join(examples)})" if examples else names


def open_source(
    path: Path, columns: Columns, *, overrides: Mapping[str, str] | None = None, encoding: str | None = None
) -> Source:
    """Check the file and map its header; raises ImportFileError before anything is written.

    ``encoding`` names the file's encoding instead of detecting it; the whole file must decode in it.
    """
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    from kizuna.imports import parquet

    if parquet.is_parquet(path):
        return parquet.open_parquet(path, columns, overrides)
    from kizuna.imports import vcard

    if vcard.is_vcard(path):
        return vcard.open_vcard(path)
    if encoding is None:
        encoding, lines = detect_encoding(path)
    else:
        encoding, lines = _given_encoding(path, encoding)
    fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    if fmt == "jsonl":
        # Objects name their own keys; the union of the first rows' keys stands in for a header.
        headers = _jsonl_keys(path, encoding)
        overrides = {k: v for k, v in (overrides or {}).items() if header_key(k) in {header_key(h) for h in headers}}
        mapping = map_headers(
            headers, Columns(columns.aliases, fallbacks=columns.fallbacks), overrides, synonyms_ok=True
        )
    else:
        with path.open(encoding=encoding, newline="") as fh:
            headers = next(csv.reader(fh), None) or []
        if not any(h.strip() for h in headers):
            raise ImportFileError(
                f"{path.name}: the file is empty or has no header line",
                key="error.import_empty_file",
                params={"file": path.name},
            )
        overrides = {**dict.fromkeys(report_columns(headers), "-"), **(overrides or {})}
        mapping = map_headers(headers, columns, overrides)
    unmapped = list(
        dict.fromkeys(h for h in headers if h.strip() and h not in mapping and h.strip() not in (overrides or {}))
    )
    source = Source(path, fmt, encoding, headers, mapping, unmapped, max(lines, 1))
    if fmt == "jsonl":
        for name, aliases in columns.aliases.items():
            for alias in (name, *aliases):
                source.key_index.setdefault(header_key(alias), name)
        for name, aliases in columns.fallbacks.items():
            for alias in aliases:
                source.key_index.setdefault(header_key(alias), name)
        source.key_index.update({header_key(h): f for h, f in mapping.items()})
        for header in headers:
            if header not in mapping:
                source.key_index.pop(header_key(header), None)
    return source


def report_columns(headers: Sequence[str]) -> list[str]:
    """The reject report's own columns (line, reason ...) when the file is a corrected reject report: they say
    why the row was rejected, not what it holds, so an import ignores them."""
    if all(headers.count(name) == 1 for name in REPORT_COLUMNS):
        return list(REPORT_COLUMNS)
    return []


def _jsonl_keys(path: Path, encoding: str, sample_lines: int = 1000) -> list[str]:
    keys: dict[str, None] = {}
    with path.open(encoding=encoding) as fh:
        for number, line in enumerate(fh):
            if number >= sample_lines:
                break
            try:
                obj = json.loads(line) if line.strip() else {}
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
    return list(keys)


class RangeMisaligned(Exception):
    """A byte range did not end at a row boundary (a stray quote fooled the split); read it sequentially."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of a CSV file, starting at a row boundary; ``first_line`` is the physical line at
    ``start`` (header = line 1). ``end`` None: no safe cut was found, the rest of the file is read sequentially."""

    start: int
    end: int | None
    first_line: int


class RecordStream(Iterator[Record]):
    """What ``records()`` returns: the data rows in file order, read lazily.

    Until it is iterated the file is untouched, so the import runner can instead hand byte ranges of the same
    source to worker processes (``split_csv`` / ``range_records``), reporting read errors as ``errors`` would.
    """

    def __init__(self, source: Source, errors: list[tuple[int, Reason]] | None) -> None:
        self.source = source
        self.errors = errors
        self._rows: Iterator[Record] | None = None

    def __iter__(self) -> Iterator[Record]:
        # Loops get the generator itself, so reading a row costs no extra Python call.
        if self._rows is None:
            self._rows = self.resume_at(ByteRange(0, None, 1))
        return self._rows

    def __next__(self) -> Record:
        return next(iter(self))

    @property
    def splittable(self) -> bool:
        """Whether byte ranges of this file decode and parse on their own, reporting read errors like this stream."""
        return (
            self.source.format == "csv"
            and codecs.lookup(self.source.encoding).name in SPLITTABLE_ENCODINGS
            and self.errors is not None
        )

    def resume_at(self, start: ByteRange) -> Iterator[Record]:
        """The rows from ``start`` (a row boundary) to the end of the file, read in this process.

        JSON Lines files are not split, so they are always read from the beginning.
        """
        if self.source.format == "jsonl":
            return _jsonl_records(self.source, self.errors)
        if self.source.format == "parquet":
            from kizuna.imports.parquet import parquet_records

            return parquet_records(self.source)
        if self.source.format == "vcard":
            from kizuna.imports.vcard import vcard_records

            return vcard_records(self.source)
        return _csv_file_records(self.source, start, self.errors)


def records(source: Source, *, errors: list[tuple[int, Reason]] | None = None) -> RecordStream:
    """The data rows in file order. Rows that cannot even be read (bad JSON) go to ``errors`` as (line, reason)."""
    return RecordStream(source, errors)


def _range_encoding(source: Source, start: int) -> str:
    # Only the start of the file carries a byte-order mark; further on U+FEFF is data and must stay.
    if start and codecs.lookup(source.encoding).name == "utf-8-sig":
        return "utf-8"
    return source.encoding


def _csv_file_records(source: Source, piece: ByteRange, errors: list[tuple[int, Reason]] | None) -> Iterator[Record]:
    with source.path.open("rb") as raw:
        raw.seek(piece.start)
        with io.TextIOWrapper(raw, encoding=_range_encoding(source, piece.start), newline="") as fh:
            yield from _csv_records(
                fh, source, first_line=piece.first_line, skip_header=piece.start == 0, errors=errors
            )


def _csv_records(
    lines: Iterable[str],
    source: Source,
    *,
    first_line: int,
    skip_header: bool,
    errors: list[tuple[int, Reason]] | None,
    end_marker: str | None = None,
) -> Iterator[Record]:
    """CSV lines (split like a file opened with newline="") as Records: the one copy of the reading rules.

    With ``end_marker`` the last line must be that marker, read back as a row of its own; otherwise the text
    before it ended inside a quoted field and RangeMisaligned is raised after the last Record.
    """
    headers = source.headers
    targets = [source.mapping.get(h) for h in headers]
    extras = [h if (h.strip() and source.mapping.get(h) is None and h in source.unmapped) else None for h in headers]
    width = len(headers)
    reader = csv.reader(lines)
    if skip_header:
        next(reader, None)
    previous_end = reader.line_num
    ended = end_marker is None
    for row in reader:
        line = first_line + previous_end
        previous_end = reader.line_num
        if end_marker is not None and len(row) == 1 and row[0] == end_marker:
            # The marker is not in the range's own text, so this row is the appended line and nothing follows.
            ended = True
            break
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            if errors is not None:
                errors.append(
                    (
                        line,
                        Reason(
                            f"the row has {len(row)} cells but the header has {width}",
                            "error.import_too_many_cells",
                            {"cells": len(row), "width": width},
                        ),
                    )
                )
            continue
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for target, extra_name, cell in zip(targets, extras, row, strict=False):
            cell = cell.strip()
            if not cell:
                continue
            if target is not None:
                values[target] = cell
            elif extra_name is not None:
                extra[extra_name] = cell
        yield Record(line, values, extra)
    if not ended:
        raise RangeMisaligned(f"the range from line {first_line} does not end at a row boundary")


def split_csv(path: Path, range_bytes: int | None = None) -> Iterator[ByteRange]:
    """Cut a CSV file into ranges of about ``range_bytes`` that each start at a row boundary, by bytes alone.

    A cut goes after a newline with an even number of quote bytes before it (RFC 4180: an odd count means the
    newline is inside a quoted field). A stray quote in an unquoted field can fool that; ``range_records``
    notices. Line numbers count line breaks as the csv reader does: \n, \r\n and a lone \r.
    """
    range_bytes = range_bytes or CSV_RANGE_BYTES
    limit = range_bytes * _MAX_RANGE_FACTOR
    with path.open("rb") as fh:
        start, line, buf = 0, 1, b""
        while True:
            block = fh.read(range_bytes)
            if not block:
                if buf:
                    yield ByteRange(start, start + len(buf), line)
                return
            # Cuts at or before the old end were already refused; only the new block's newlines are candidates.
            floor = len(buf)
            buf += block
            cut = _safe_cut(buf, floor)
            if cut is None:
                if len(buf) > limit:
                    yield ByteRange(start, None, line)
                    return
                continue
            yield ByteRange(start, start + cut, line)
            line += buf.count(b"\n", 0, cut)
            # Counting \r\n is the slowest step; only a lone \r (rare) makes it necessary.
            if buf.find(b"\r", 0, cut) >= 0 and _LONE_CR.search(buf, 0, cut):
                line += buf.count(b"\r", 0, cut) - buf.count(b"\r\n", 0, cut)
            start += cut
            buf = buf[cut:]


def _safe_cut(buf: bytes, floor: int) -> int | None:
    cut = buf.rfind(b"\n") + 1
    if cut <= floor:
        return None
    quotes = buf.count(b'"', 0, cut)
    while quotes % 2:
        previous = buf.rfind(b"\n", 0, cut - 1) + 1
        if previous <= floor:
            return None
        quotes -= buf.count(b'"', previous, cut)
        cut = previous
    return cut


def range_records(source: Source, piece: ByteRange, errors: list[tuple[int, Reason]]) -> Iterator[Record]:
    """The Records of one range from ``split_csv``, read exactly as ``records()`` reads them (in a worker).

    Raises RangeMisaligned, after whatever it yielded, when the range does not end at a row boundary; those
    Records are then wrong and the caller reads from ``piece`` sequentially instead.
    """
    assert piece.end is not None
    with source.path.open("rb") as fh:
        fh.seek(piece.start)
        data = fh.read(piece.end - piece.start)
    try:
        text = data.decode(_range_encoding(source, piece.start))
    except UnicodeDecodeError as exc:
        # The whole file decoded when it was opened, so the cut is at fault (or the file changed since).
        raise RangeMisaligned(str(exc)) from exc
    if _END_OF_RANGE in text:
        raise RangeMisaligned("the range contains the end-of-range marker")
    lines = io.StringIO(f"{text}\n{_END_OF_RANGE}", newline="")
    try:
        yield from _csv_records(
            lines,
            source,
            first_line=piece.first_line,
            skip_header=piece.start == 0,
            errors=errors,
            end_marker=_END_OF_RANGE,
        )
    except csv.Error as exc:
        # A misaligned range can swallow megabytes into one quoted field past the field size limit; if the
        # error is real, the sequential reader raises it again.
        raise RangeMisaligned(str(exc)) from exc


def _jsonl_records(source: Source, errors: list[tuple[int, Reason]] | None) -> Iterator[Record]:
    index = source.key_index
    with source.path.open(encoding=source.encoding) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                if errors is not None:
                    reason = f"not valid JSON: {exc.msg} at column {exc.colno}"
                    errors.append((line, Reason(reason, "error.import_bad_json", {"column": exc.colno})))
                continue
            except RecursionError:  # nested deeper than Python's parser goes
                if errors is not None:
                    errors.append((line, Reason("JSON nested too deep", "error.import_json_too_deep")))
                continue
            if not isinstance(obj, dict):
                if errors is not None:
                    errors.append((line, Reason("each line must be a JSON object", "error.import_not_object")))
                continue
            values: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for key, value in obj.items():
                if value is None or (isinstance(value, str) and not value.strip()):
                    continue
                target = index.get(header_key(key))
                if target is not None:
                    values[target] = value.strip() if isinstance(value, str) else value
                else:
                    extra[key] = value
            yield Record(line, values, extra)


def original_rows(source: Source, lines: set[int]) -> tuple[list[str], dict[int, list[str]]]:
    """The file's own header and the cells of ``lines`` as the file has them (for a reject report a user can
    correct and import again). Lines are counted as ``records`` counts them; a JSON Lines file's objects are
    laid out under the union of their keys, with nested values as JSON text."""
    found: dict[int, list[str]] = {}
    if not lines:
        return list(source.headers), found
    if source.format == "parquet":
        from kizuna.imports.parquet import parquet_rows

        for line, row in parquet_rows(source):
            if line in lines:
                found[line] = [cell or "" for cell in row]
                if len(found) == len(lines):
                    break
        return list(source.headers), found
    if source.format == "vcard":
        from kizuna.imports.vcard import vcard_rows

        found = {line: [cell or "" for cell in row] for line, row in vcard_rows(source) if line in lines}
        return list(source.headers), found
    if source.format == "jsonl":
        objects: dict[int, dict[str, Any]] = {}
        with source.path.open(encoding=source.encoding) as fh:
            for line, text in enumerate(fh, start=1):
                if line in lines:
                    try:
                        obj = json.loads(text)
                    except (ValueError, RecursionError):
                        obj = None
                    objects[line] = obj if isinstance(obj, dict) else {}
                    if len(objects) == len(lines):
                        break
        keys = list(dict.fromkeys(k for obj in objects.values() for k in obj))
        return keys, {line: [_cell_text(obj.get(k)) for k in keys] for line, obj in objects.items()}
    with source.path.open(encoding=source.encoding, newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        previous_end = reader.line_num
        for row in reader:
            line = 1 + previous_end
            previous_end = reader.line_num
            if line in lines:
                found[line] = row
                if len(found) == len(lines):
                    break
    return list(source.headers), found


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
