"""Running an import: read, parse (in worker processes for big files), write in batches, report.

Each batch is one transaction: a failure leaves every earlier batch committed and nothing of the failed one,
and since every kind of import is idempotent, running the same file again finishes the job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.catalog.importer import IMPORTER as PRODUCTS
from kizuna.config import get_settings
from kizuna.customers.importer import IMPORTER as CUSTOMERS
from kizuna.db import transaction
from kizuna.errors import KizunaError
from kizuna.events.importer import IMPORTER as EVENTS
from kizuna.imports.bulk import restore_indexes, without_indexes
from kizuna.imports.importer import (
    STAGED_SCHEMA,
    Importer,
    ImportOptions,
    Rejected,
    RowRejected,
    Staged,
    Warned,
    WriteContext,
    chunked,
)
from kizuna.imports.reader import (
    CSV_RANGE_BYTES,
    ByteRange,
    ImportFileError,
    RangeMisaligned,
    Record,
    RecordStream,
    Source,
    open_source,
    original_rows,
    range_records,
    records,
    split_csv,
)
from kizuna.imports.report import ImportReport, Reason, default_report_path
from kizuna.imports.staging import new_stage_dir, remove_stale_stage_dirs
from kizuna.orders.importer import IMPORTER as ORDERS
from kizuna.outbox.service import emit

# "vcard" is the customers importer fed by a vCard file (kizuna/imports/vcard.py): same rows, rules and effects.
KINDS: dict[str, Importer] = {
    "customers": CUSTOMERS,
    "vcard": CUSTOMERS,
    "products": PRODUCTS,
    "orders": ORDERS,
    "events": EVENTS,
}
# Below this size a worker pool costs more to start than it saves.
PARALLEL_MIN_BYTES = 4_000_000
# How much parser processes lower their scheduling priority (see _parse).
PARSER_NICENESS = 10
# SQLite page cache of the import's own connection while it runs (KiB; the default elsewhere is 64 MiB). The
# indexes an import feeds (e-mail, phone, name, identities) take random keys, so once they outgrow the cache
# every insert reads pages back. Pages are only allocated as used and freed when the import ends.
SQLITE_IMPORT_CACHE_KIB = 512 * 1024
# WAL pages between automatic checkpoints on that connection (the default is 1,000, about 4 MB). A batch of
# random-key index inserts dirties far more pages than that, so by default every commit is followed by a
# checkpoint that copies them into the database and syncs; a longer interval copies a page rewritten by
# several batches once. The WAL is checkpointed and truncated when the import ends.
SQLITE_IMPORT_WAL_PAGES = 100_000

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
    return KINDS[kind]


def custom_field_options(bind: Engine | Session, importer: Importer) -> dict[str, Any]:
    """The ``ImportOptions`` of the custom fields an ``attributes.<key>`` column fills (customers' files)."""
    if not importer.columns.custom_attributes:
        return {}
    from kizuna.fields import service as custom_fields

    if isinstance(bind, Session):
        return {"custom_fields": custom_fields.rules_of(bind, "customer"), "user_ids": custom_fields.user_ids(bind)}
    with transaction(bind) as session:
        return custom_field_options(session, importer)


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
    encoding: str | None = None,
) -> ImportReport:
    """Import ``path`` as ``kind`` (customers, products, orders, events) and return what happened.

    ``mapping`` is ``{"CSV header": "field"}`` over the automatic header mapping; ``encoding`` names the file's
    encoding instead of detecting it. Bad rows are rejected and
    listed in the report (also written as CSV to ``report_path``); good rows land. ``dry_run`` does all the
    work in one transaction and rolls it back, so its counts are exactly what a real run would do.
    ``progress(rows_done, rows_estimate)`` is called after each batch. Raises ImportFileError (nothing
    written) when the file cannot be imported, ImportAborted when a batch fails to write.
    """
    require(actor, "data:import")
    importer = importer_for(kind)
    path = Path(path)
    source = open_source(path, importer.columns, overrides=mapping, encoding=encoding)
    if kind == "vcard" and source.format != "vcard":
        raise ImportFileError(f"{path.name}: not a vCard file (a .vcf file starting with BEGIN:VCARD)")
    if source.format == "vcard":
        if kind != "customers" and kind != "vcard":
            raise ImportFileError(f"{path.name}: a vCard file holds contacts; import it as vcard or customers")
        # A card's company, title and note have no customer field: they are kept as attributes.
        extra_to_attributes = True
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    options = ImportOptions(
        file_name=path.name,
        file_sha256=digest,
        extra_to_attributes=extra_to_attributes,
        link_companies=source.format == "vcard",
        create_products=create_products,
        **custom_field_options(engine, importer),
    )
    report = ImportReport(kind=kind, file=path.name, encoding=source.encoding, dry_run=dry_run)
    report.mapping = dict(source.mapping)
    report.ignored_columns = [] if importer.keeps_extras(options) else list(source.unmapped)
    size = batch_size or get_settings().import_batch_size
    if workers is None:
        big = importer.parallel and path.stat().st_size >= PARALLEL_MIN_BYTES
        workers = (os.cpu_count() or 1) if big else 1

    # Indexes an interrupted bulk load left dropped are built before anything else.
    for table, _names in importer.bulk_indexes:
        restore_indexes(engine, table)

    read_errors: list[tuple[int, Reason]] = []
    # On SQLite the parser processes hand over big CSV files as staged batches in scratch files of their own.
    staging = not dry_run and engine.dialect.name == "sqlite" and importer.stages and workers > 1
    remove_stale_stage_dirs()  # left by imports killed before they could clean up
    stage_dir = new_stage_dir() if staging else None
    parsed = _parse(importer, records(source, errors=read_errors), options, size, workers, report, stage_dir)
    # Everything the import writes says it came from an import, so journeys and webhooks can leave
    # backfilled history alone (the outbox message's origin).
    ctx = WriteContext(actor=actor.via("import"), options=options, report=report)
    started = time.perf_counter()
    try:
        with _import_bind(engine) as bind, ExitStack() as bulk_load:
            batches = importer.batches(parsed, size)
            if dry_run:
                # All batches in one transaction on the import's own connection, rolled back before that
                # connection checkpoints the WAL. (A session of its own still held SQLite's write lock at the
                # checkpoint, which then waited out the busy timeout: 15 s for a 2-row file.)
                with _batch_transaction(bind, commit=False) as session:
                    for batch in batches:
                        _take_read_errors(read_errors, report)
                        importer.write(session, batch, ctx)
                        session.flush()
                        if progress is not None:
                            progress(report.read, source.line_estimate)
            else:
                if importer.bulk_indexes:
                    # SQLite: the import's own connection (one writer); PostgreSQL: one beside the batches'.
                    owner = bind if isinstance(bind, Connection) else bulk_load.enter_context(bind.connect())
                    for table, names in importer.bulk_indexes:
                        bulk_load.enter_context(without_indexes(owner, table, names))
                for number, batch in enumerate(batches, start=1):
                    _take_read_errors(read_errors, report)
                    _write_batch(bind, importer, batch, ctx, number)
                    if progress is not None:
                        progress(report.read, source.line_estimate)
        _take_read_errors(read_errors, report)
        if not dry_run and report.changed:
            with transaction(engine) as session:
                emit(session, "import.completed", {"kind": kind, "file": path.name, "counts": report.counts()})
    finally:
        if stage_dir is not None:
            shutil.rmtree(stage_dir, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        report.write_csv(report_path or default_report_path(kind), lambda lines: original_rows(source, lines))
    return report


@contextmanager
def _import_bind(engine: Engine) -> Iterator[Engine | Connection]:
    """What the batches write through: on SQLite one connection with a bigger page cache for the import."""
    if engine.dialect.name != "sqlite":
        yield engine
        return
    with engine.connect() as connection:
        cache_size = connection.exec_driver_sql("PRAGMA cache_size").scalar()
        temp_store = connection.exec_driver_sql("PRAGMA temp_store").scalar()
        checkpoint = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
        connection.exec_driver_sql("PRAGMA temp_store=MEMORY")
        connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_IMPORT_WAL_PAGES}")
        connection.commit()
        try:
            yield connection
        finally:
            connection.rollback()
            connection.exec_driver_sql(f"PRAGMA cache_size={int(cache_size or 0)}")
            connection.exec_driver_sql(f"PRAGMA temp_store={int(temp_store or 0)}")
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={int(checkpoint or 0)}")
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.commit()


@contextmanager
def _batch_transaction(bind: Engine | Connection, *, commit: bool = True) -> Iterator[Session]:
    """One batch's transaction; ``commit=False`` (a dry run) rolls it back at the end instead."""
    if isinstance(bind, Engine) and commit:
        with transaction(bind) as session:
            yield session
        return
    session = Session(bind=bind, expire_on_commit=False)
    try:
        if isinstance(bind, Connection):
            # Take SQLite's write lock before the batch reads anything: a batch that read first and then found
            # another writer had committed in between could not write at all (and ids it reserved would be
            # stale).
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session
        if commit:
            session.commit()
    finally:
        # Nothing is left open: a failed batch, or every dry-run batch, rolls back here.
        session.rollback()
        session.close()


def _write_batch(
    bind: Engine | Connection, importer: Importer, batch: list[Any], ctx: WriteContext, number: int
) -> None:
    report = ctx.report
    before = report.counts()
    rejects_before = len(report.rejects)
    try:
        with _attached(bind, batch), _batch_transaction(bind) as session:
            importer.write(session, batch, ctx)
            delta = {k: v - before.get(k, 0) for k, v in report.counts().items() if v != before.get(k, 0)}
            written = {
                k: v for k, v in delta.items() if k not in ("read", "unchanged", "rejected", "duplicates", "warnings")
            }
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


@contextmanager
def _attached(bind: Engine | Connection, batch: Any) -> Iterator[None]:
    """A staged batch's file attached to the writer's connection for the batch, then detached and deleted."""
    if not isinstance(batch, Staged):
        yield
        return
    assert isinstance(bind, Connection), "staged batches are written through the import's SQLite connection"
    # ATTACH and DETACH cannot run inside a transaction.
    bind.exec_driver_sql(f"ATTACH DATABASE ? AS {STAGED_SCHEMA}", (str(batch.path),))
    bind.commit()
    try:
        yield
    finally:
        bind.rollback()
        bind.exec_driver_sql(f"DETACH DATABASE {STAGED_SCHEMA}")
        bind.commit()
        batch.path.unlink(missing_ok=True)


def _take_read_errors(errors: list[tuple[int, Reason]], report: ImportReport) -> None:
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
    stage_dir: Path | None = None,
) -> Iterator[Any]:
    """Parsed rows (or Staged batches, given ``stage_dir``) in file order; rejected ones go into the report."""
    chunk_size = min(size, 2000)
    if workers <= 1:
        for chunk in chunked(rows, chunk_size):
            yield from _collect(parse_chunk(importer.kind, options, chunk), report)
        return
    # The writer (this process) is the critical path; parsers lower their priority so it never waits for a core.
    with ProcessPoolExecutor(max_workers=workers, initializer=_start_parser, initargs=(os.getpid(),)) as pool:
        if isinstance(rows, RecordStream) and rows.splittable:
            # Reading and pickling Records would make this process (which also writes) the bottleneck: workers
            # read their own byte ranges, and this process only finds where to cut.
            resume = yield from _parse_ranges(
                pool, importer.kind, options, rows.source, size, workers, report, stage_dir
            )
            if resume is None:
                return
            rows = rows.resume_at(resume)
        # Workers parse ahead while this process writes; a bounded queue keeps memory flat on big files.
        pending: deque[Future[list[Any]]] = deque()
        ahead = _ahead(workers, size, chunk_size)
        for chunk in chunked(rows, chunk_size):
            pending.append(pool.submit(parse_chunk, importer.kind, options, chunk))
            if len(pending) >= ahead:
                yield from _collect(pending.popleft().result(), report)
        while pending:
            yield from _collect(pending.popleft().result(), report)


def _start_parser(parent: int) -> None:
    """In each parser process: lower its priority, and end it when the import that started it is gone.

    A parser waits on a queue whose pipe it shares with its siblings, so an import killed with SIGKILL would
    otherwise leave its parsers waiting forever.
    """
    os.nice(PARSER_NICENESS)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="kizuna-parent-watch", daemon=True).start()


def _ahead(workers: int, batch_rows: int, rows_per_task: int) -> int:
    """Parse tasks to keep submitted: two batches' worth, so the workers go on parsing the next batch while this
    process writes one (a shorter queue leaves them idle for most of a big batch's write)."""
    return max(workers * 3, 2 * -(-batch_rows // max(rows_per_task, 1)) + workers)


def _parse_ranges(
    pool: ProcessPoolExecutor,
    kind: str,
    options: ImportOptions,
    source: Source,
    size: int,
    workers: int,
    report: ImportReport,
    stage_dir: Path | None,
) -> Generator[Any, None, ByteRange | None]:
    """Parsed rows of a CSV file read by the workers range by range, in file order.

    Returns None when the file is done, or the range from which the caller must read sequentially: one that
    did not end at a row boundary, or the rest of a file the splitter found no safe cut in.
    """
    pending: deque[tuple[ByteRange, Future[list[Any] | None]]] = deque()
    bytes_per_row = max(source.path.stat().st_size // source.line_estimate, 1)
    # A staged range is written as one batch, so it is cut to about a batch's size.
    range_bytes = size * bytes_per_row if stage_dir is not None else None
    pieces = split_csv(source.path, range_bytes)
    ahead = _ahead(workers, size, (range_bytes or CSV_RANGE_BYTES) // bytes_per_row)
    resume: ByteRange | None = None
    splitting = True
    try:
        while True:
            if splitting and len(pending) < ahead:
                piece = next(pieces, None)
                if piece is not None and piece.end is not None:
                    pending.append((piece, pool.submit(parse_range, kind, options, source, piece, stage_dir)))
                    continue
                splitting, resume = False, piece
            if not pending:
                return resume
            piece, future = pending.popleft()
            result = future.result()
            if result is None:
                # The next range starts inside a quoted field, and no later start can be trusted either;
                # none of them has been counted yet.
                for _, later in pending:
                    later.cancel()
                return piece
            yield from _collect(result, report)
    finally:
        pieces.close()


def _collect(results: list[Any], report: ImportReport) -> Iterator[Any]:
    for item in results:
        if isinstance(item, Warned):
            # Comes just before its row, which is counted as read when it follows.
            for field, reason in item.warnings:
                report.warn(item.line, field, reason)
            continue
        if isinstance(item, Staged):
            report.read += item.rows
            yield item
            continue
        report.read += 1
        if isinstance(item, Rejected):
            for field, reason in item.errors:
                report.reject(item.line, field, reason)
        else:
            yield item


def parse_chunk(kind: str, options: ImportOptions, chunk: list[Record]) -> list[Any]:
    """Parse rows (in a worker process for big files): each becomes a parsed value or a Rejected."""
    return _parse_records(importer_for(kind), chunk, options)


def parse_range(
    kind: str, options: ImportOptions, source: Source, piece: ByteRange, stage_dir: Path | None = None
) -> list[Any] | None:
    """Read, decode and parse one byte range of a CSV file (in a worker process), unreadable rows as Rejected.

    With ``stage_dir`` the good rows are written to a file there and come back as one Staged item after the
    rejects. None when the range turns out not to end at a row boundary: the caller then reads from it
    sequentially.
    """
    importer = importer_for(kind)
    read_errors: list[tuple[int, Reason]] = []
    try:
        parsed = _parse_records(importer, range_records(source, piece, read_errors), options, read_errors)
    except RangeMisaligned:
        return None
    if stage_dir is None:
        return parsed
    rows = [item for item in parsed if not isinstance(item, Rejected | Warned)]
    out: list[Any] = [item for item in parsed if isinstance(item, Rejected | Warned)]
    if rows:
        path = stage_dir / f"range-{piece.start}.db"
        importer.stage(rows, path)
        out.append(Staged(path, len(rows)))
    return out


def _parse_records(
    importer: Importer,
    rows: Iterable[Record],
    options: ImportOptions,
    read_errors: list[tuple[int, Reason]] | None = None,
) -> list[Any]:
    out: list[Any] = []
    for record in rows:
        # Read errors so far are of lines before this record: in the output they keep their place in the file.
        if read_errors:
            out.extend(Rejected(line, [("row", reason)]) for line, reason in read_errors)
            read_errors.clear()
        warnings: list[tuple[str, Reason]] = []
        try:
            parsed = importer.parse(record, options, _collector(warnings))
        except RowRejected as exc:
            out.append(Rejected(record.line, exc.errors))
            continue
        if warnings:
            out.append(Warned(record.line, warnings))
        out.append(parsed)
    if read_errors:
        out.extend(Rejected(line, [("row", reason)]) for line, reason in read_errors)
        read_errors.clear()
    return out


def _collector(warnings: list[tuple[str, Reason]]) -> Callable[[str, Reason], None]:
    def warn(field: str, reason: Reason) -> None:
        warnings.append((field, reason))

    return warn
