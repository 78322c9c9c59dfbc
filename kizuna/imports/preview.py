"""The preview of an import job: its first rows as they would be stored, with the errors each would get."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.errors import KizunaError
from kizuna.imports.importer import ImportOptions, RowRejected
from kizuna.imports.jobs import check, file_path, get_job, options_of
from kizuna.imports.models import ImportJob
from kizuna.imports.reader import SPLITTABLE_ENCODINGS, ImportFileError, Source, records
from kizuna.imports.report import Reason, Reject
from kizuna.imports.runner import custom_field_options, importer_for, run_import

PREVIEW_ROWS = 20
# Bytes of the file's start read to cut the preview's sample (20 rows fit in far less).
_SAMPLE_BYTES = 4 << 20


@dataclass
class PreviewRow:
    """A row of the preview; its errors and warnings carry their catalog keys, so the page shows them in the
    viewer's language."""

    line: int
    values: dict[str, str]
    errors: list[Reject] = field(default_factory=list)
    warnings: list[Reject] = field(default_factory=list)


@dataclass
class Preview:
    """The first rows as they would be stored, with the errors the import would give them."""

    rows: list[PreviewRow]
    fields: list[str]
    # Why the file cannot be imported with this mapping (a required column missing ...), or None; with the
    # catalog key and params the page words it in the viewer's language.
    problem: str | None = None
    problem_key: str = ""
    problem_params: dict[str, Any] = field(default_factory=dict)


def preview(session: Session, *, actor: Actor, job_id: int, limit: int = PREVIEW_ROWS) -> Preview:
    """Parse the first ``limit`` rows as the import would, and dry-run them (written and rolled back) for the
    errors only the database can tell (an order of an unknown customer). Nothing is written."""
    job = get_job(session, actor=actor, job_id=job_id)
    importer = importer_for(job.kind)
    try:
        source = check(job)
    except ImportFileError as exc:
        return Preview(rows=[], fields=[], problem=exc.message, problem_key=exc.key or "", problem_params=exc.params)
    overrides, attributes = options_of(job)
    options = ImportOptions(
        file_name=job.file_name, extra_to_attributes=attributes, **custom_field_options(session, importer)
    )
    read_errors: list[tuple[int, Reason]] = []
    rows: list[PreviewRow] = []
    next_line: int | None = None
    try:
        for record in records(source, errors=read_errors):
            if len(rows) >= limit:
                next_line = record.line
                break
            warnings: list[tuple[str, Reason]] = []
            try:
                parsed = importer.parse(record, options, lambda f, r, w=warnings: w.append((f, r)))
            except RowRejected as exc:
                rows.append(PreviewRow(record.line, _shown(record.values), _rejects(record.line, exc.errors)))
                continue
            shown = _shown(importer.preview_values(parsed))
            rows.append(PreviewRow(record.line, shown, [], _rejects(record.line, warnings)))
    except (csv.Error, UnicodeDecodeError) as exc:
        return Preview(rows=rows, fields=[], problem=str(exc))
    for line, reason in read_errors:
        if next_line is None or line < next_line:
            rows.append(PreviewRow(line, {}, _rejects(line, [("row", reason)])))
    rows.sort(key=lambda r: r.line)
    rows = rows[:limit]
    _dry_run_sample(session.get_bind(), job, source, rows, next_line, actor, overrides, attributes)
    fields = list(dict.fromkeys(name for row in rows for name in row.values))
    return Preview(rows=rows, fields=fields)


def _dry_run_sample(
    engine: Any,
    job: ImportJob,
    source: Source,
    rows: list[PreviewRow],
    next_line: int | None,
    actor: Actor,
    overrides: dict[str, str],
    attributes: bool,
) -> None:
    """Replace each row's errors and warnings with those of a dry run of the sample (the same lines of the file).

    Only for encodings whose bytes can be cut at line breaks; otherwise the parser's errors stand.
    """
    if not isinstance(engine, Engine):
        return
    path = file_path(job)
    parquet = source.format == "parquet"
    head = b""
    if not parquet:
        if codecs.lookup(source.encoding).name not in SPLITTABLE_ENCODINGS:
            return
        with path.open("rb") as fh:
            head = fh.read(_SAMPLE_BYTES)
        if next_line is not None:
            lines = head.splitlines(keepends=True)
            if len(lines) < next_line - 1:
                return  # rows too long to sample: the parser's errors stand
            head = b"".join(lines[: next_line - 1])
        elif len(head) == _SAMPLE_BYTES:
            return
    scratch = Path(tempfile.mkdtemp(prefix="kizuna-preview-"))
    try:
        # The file's own name, so that what the import says about it (import marks, messages) is the same.
        sample = scratch / Path(job.file_name).with_suffix(path.suffix).name
        if parquet:
            _parquet_head(path, sample, (next_line - 1) if next_line is not None else None)
        else:
            sample.write_bytes(head)
        report = run_import(
            engine,
            job.kind,
            sample,
            actor=actor,
            mapping=overrides,
            dry_run=True,
            report_path=scratch / "rejects.csv",
            extra_to_attributes=attributes,
            workers=1,
            encoding=source.encoding,
        )
    except KizunaError:
        return
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    errors: dict[int, list[Reject]] = {}
    warnings: dict[int, list[Reject]] = {}
    for r in report.rejects:
        errors.setdefault(r.line, []).append(r)
    for w in report.warnings:
        warnings.setdefault(w.line, []).append(w)
    for row in rows:
        row.errors = errors.get(row.line, [])
        row.warnings = warnings.get(row.line, [])


def _rejects(line: int, problems: list[tuple[str, Reason]]) -> list[Reject]:
    return [Reject(line, name, r.text, r.key, r.params) for name, r in problems]


def _shown(values: Mapping[str, Any]) -> dict[str, str]:
    return {name: _text(value) for name, value in values.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal | dt.date):
        return str(value)
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _parquet_head(path: Path, sample: Path, rows: int | None) -> None:
    """The first ``rows`` rows of a Parquet file (all when None) as a Parquet file of their own: the sample's cut."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    if rows is None:
        table = source.read()
    else:
        batches = []
        for batch in source.iter_batches(batch_size=max(rows, 1)):
            batches.append(batch)
            break
        table = pa.Table.from_batches(batches, schema=source.schema_arrow).slice(0, rows)
    pq.write_table(table, sample)
