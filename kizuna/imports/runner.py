"""Running an import: read, parse (in worker processes for big files), write in batches, report.

Each batch is one transaction: a failure leaves every earlier batch committed and nothing of the failed one,
and since every kind of import is idempotent, running the same file again finishes the job.
"""

from __future__ import annotations

import importlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import new_session, transaction
from kizuna.errors import KizunaError
from kizuna.imports.importer import Importer, ImportOptions, Rejected, RowRejected, WriteContext, chunked
from kizuna.imports.reader import ImportFileError, Record, open_source, records
from kizuna.imports.report import ImportReport, default_report_path
from kizuna.outbox.service import emit

KINDS: dict[str, str] = {
    "customers": "kizuna.customers.importer",
    "products": "kizuna.catalog.importer",
    "orders": "kizuna.orders.importer",
    "events": "kizuna.events.importer",
}
# Below this size a worker pool costs more to start than it saves.
PARALLEL_MIN_BYTES = 4_000_000

Progress = Callable[[int, int], None]


class ImportAborted(KizunaError):
    """A batch failed to write; batches before it are committed, the failed one left no trace."""

    status_code = 500
    code = "import_aborted"

    def __init__(self, message: str, *, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


def importer_for(kind: str) -> Importer:
    if kind not in KINDS:
        raise ImportFileError(f"unknown import kind '{kind}'; choose one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind]).IMPORTER


def run_import(
    engine: Engine,
    kind: str,
    path: Path | str,
    *,
    actor: Actor,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    report_path: Path | None = None,
    progress: Progress | None = None,
    extra_to_attributes: bool = False,
    create_products: bool = False,
    batch_size: int | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import ``path`` as ``kind`` (customers, products, orders, events) and return what happened.

    ``mapping`` is ``{"CSV header": "field"}`` over the automatic header mapping. Bad rows are rejected and
    listed in the report (also written as CSV to ``report_path``); good rows land. ``dry_run`` does all the
    work in one transaction and rolls it back, so its counts are exactly what a real run would do.
    ``progress(rows_done, rows_estimate)`` is called after each batch. Raises ImportFileError (nothing
    written) when the file cannot be imported, ImportAborted when a batch fails to write.
    """
    require(actor, "data:import")
    importer = importer_for(kind)
    path = Path(path)
    source = open_source(path, importer.columns, overrides=mapping)
    options = ImportOptions(
        file_name=path.name, extra_to_attributes=extra_to_attributes, create_products=create_products
    )
    report = ImportReport(kind=kind, file=path.name, encoding=source.encoding, dry_run=dry_run)
    report.mapping = dict(source.mapping)
    keeps_extras = kind == "events" or (kind == "customers" and extra_to_attributes)
    report.ignored_columns = [] if keeps_extras else list(source.unmapped)
    size = batch_size or get_settings().import_batch_size
    if workers is None:
        big = importer.parallel and path.stat().st_size >= PARALLEL_MIN_BYTES
        workers = (os.cpu_count() or 1) if big else 1

    read_errors: list[tuple[int, str]] = []
    parsed = _parse(importer, records(source, errors=read_errors), options, size, workers, report)
    ctx = WriteContext(actor=actor, options=options, report=report)
    started = time.perf_counter()
    dry_session = new_session(engine) if dry_run else None
    try:
        for number, batch in enumerate(importer.batches(parsed, size), start=1):
            _take_read_errors(read_errors, report)
            if dry_session is not None:
                importer.write(dry_session, batch, ctx)
                dry_session.flush()
            else:
                _write_batch(engine, importer, batch, ctx, number)
            if progress is not None:
                progress(report.read, source.line_estimate)
        _take_read_errors(read_errors, report)
        if dry_session is None and report.changed:
            with transaction(engine) as session:
                emit(session, "import.completed", {"kind": kind, "file": path.name, "counts": report.counts()})
    finally:
        if dry_session is not None:
            dry_session.rollback()
            dry_session.close()
        report.seconds = time.perf_counter() - started
        report.write_csv(report_path or default_report_path(kind))
    return report


def _write_batch(engine: Engine, importer: Importer, batch: list[Any], ctx: WriteContext, number: int) -> None:
    report = ctx.report
    before = report.counts()
    rejects_before = len(report.rejects)
    try:
        with transaction(engine) as session:
            importer.write(session, batch, ctx)
            delta = {k: v - before.get(k, 0) for k, v in report.counts().items() if v != before.get(k, 0)}
            written = {k: v for k, v in delta.items() if k not in ("read", "unchanged", "rejected", "duplicates")}
            if written:
                audit.record(
                    session,
                    actor=ctx.actor,
                    action=f"import.{importer.kind}",
                    entity_type="import",
                    entity_id=ctx.options.file_name[:64],
                    details={"file": ctx.options.file_name, "batch": number, "counts": delta},
                    summary=f"{ctx.options.file_name} batch {number}",
                )
    except Exception as exc:
        # Counts of the failed batch never happened; put them back so the report tells the truth.
        for name in ("inserted", "updated", "unchanged", "merged", "duplicates"):
            setattr(report, name, before[name])
        report.notes = {k: before[k] for k in report.notes if k in before}
        del report.rejects[rejects_before:]
        raise ImportAborted(
            f"batch {number} failed to write and was rolled back ({type(exc).__name__}: {exc}); "
            f"{number - 1} earlier batch(es) are committed; fix the cause and run the same import again",
            report=report,
        ) from exc


def _take_read_errors(errors: list[tuple[int, str]], report: ImportReport) -> None:
    for line, reason in errors:
        report.read += 1
        report.reject(line, "row", reason)
    errors.clear()


def _parse(
    importer: Importer,
    rows: Iterable[Record],
    options: ImportOptions,
    size: int,
    workers: int,
    report: ImportReport,
) -> Iterator[Any]:
    """Parsed rows in file order; rejected ones go straight into the report."""
    chunk_size = min(size, 2000)
    if workers <= 1:
        for chunk in chunked(rows, chunk_size):
            yield from _collect(parse_chunk(importer.kind, options, chunk), report)
        return
    # Workers parse ahead while this process writes; a bounded queue keeps memory flat on big files.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[Any]]] = deque()
        for chunk in chunked(rows, chunk_size):
            pending.append(pool.submit(parse_chunk, importer.kind, options, chunk))
            if len(pending) >= workers * 3:
                yield from _collect(pending.popleft().result(), report)
        while pending:
            yield from _collect(pending.popleft().result(), report)


def _collect(results: list[Any], report: ImportReport) -> Iterator[Any]:
    for item in results:
        report.read += 1
        if isinstance(item, Rejected):
            for field, reason in item.errors:
                report.reject(item.line, field, reason)
        else:
            yield item


def parse_chunk(kind: str, options: ImportOptions, chunk: list[Record]) -> list[Any]:
    """Parse rows (in a worker process for big files): each becomes a parsed value or a Rejected."""
    importer = importer_for(kind)
    out: list[Any] = []
    for record in chunk:
        try:
            out.append(importer.parse(record, options))
        except RowRejected as exc:
            out.append(Rejected(record.line, exc.errors))
    return out
