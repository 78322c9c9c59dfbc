"""Parquet files as import sources: ``kizuna import orders FILE.parquet`` reads them like a CSV file.

The file's column names are its header (mapped onto fields by the same aliases and ``--map``), and each typed
value becomes the text a CSV export of it would hold (``parquet_cell``), so Parquet rows go through the same
parsing, validation, identity rules, reject report and side effects as CSV rows, with no second code path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from kizuna.imports.reader import Columns, ImportFileError, Record, Source, map_headers, report_columns

PARQUET_MAGIC = b"PAR1"
# Rows per record batch read from the file.
PARQUET_BATCH = 10_000


def is_parquet(path: Path) -> bool:
    """A Parquet file by its name or by its magic bytes (``PAR1`` at the start)."""
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == PARQUET_MAGIC


def open_parquet(path: Path, columns: Columns, overrides: Mapping[str, str] | None) -> Source:
    """A Parquet file's column names stand in for the header; its rows are read as the cells of a CSV file would
    be (``parquet_cell``), so they go through the same parsing, checks and side effects."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        headers = [meta.schema.column(i).path.split(".")[0] for i in range(meta.num_columns)]
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise ImportFileError(f"{path.name}: not a readable Parquet file ({exc})") from None
    headers = list(dict.fromkeys(headers))
    if not headers:
        raise ImportFileError(f"{path.name}: the Parquet file has no columns")
    overrides = {**dict.fromkeys(report_columns(headers), "-"), **(overrides or {})}
    mapping = map_headers(headers, columns, overrides)
    unmapped = [h for h in headers if h.strip() and h not in mapping and h.strip() not in overrides]
    # As for a CSV file, the header counts as line 1: row N of the file is line N + 1 in the report.
    return Source(path, "parquet", "parquet", headers, mapping, unmapped, meta.num_rows + 1)


def parquet_cell(value: Any) -> str | None:
    """A typed Parquet value as the text a CSV export of it holds (what the importers parse)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip() or None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def parquet_rows(source: Source) -> Iterator[tuple[int, list[str | None]]]:
    """(line, cells as text in header order) for every row of a Parquet file."""
    import pyarrow.parquet as pq

    line = 1
    for batch in pq.ParquetFile(source.path).iter_batches(batch_size=PARQUET_BATCH, columns=source.headers):
        data = batch.to_pydict()
        cells = [data[h] for h in source.headers]
        for i in range(batch.num_rows):
            line += 1
            yield line, [parquet_cell(column[i]) for column in cells]


def parquet_records(source: Source) -> Iterator[Record]:
    targets = [source.mapping.get(h) for h in source.headers]
    extras = [h if (source.mapping.get(h) is None and h in source.unmapped) else None for h in source.headers]
    for line, row in parquet_rows(source):
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for target, extra_name, cell in zip(targets, extras, row, strict=True):
            if cell is None:
                continue
            if target is not None:
                values[target] = cell
            elif extra_name is not None:
                extra[extra_name] = cell
        if values or extra:
            yield Record(line, values, extra)
