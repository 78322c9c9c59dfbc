"""Import jobs: a file uploaded from the browser or the API, mapped, previewed and imported by ``run_import``.

The import itself is the CLI's (``runner.run_import``); a job only keeps the file, the user's mapping and how
the run goes. Small files run in the request; every job is also queued to the worker (``import.queued``), so a
job whose web process died is still finished, and a worker killed mid-import leaves a job whose heartbeat stops:
the outbox retries the delivery, the next worker takes the job over and runs the same file again, which every
kind of import makes idempotent (see ``tests/imports/test_import_jobs.py``).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth import service as auth
from kizuna.auth.permissions import Actor, require
from kizuna.config import get_settings
from kizuna.db import utcnow
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.exports.service import neutralize
from kizuna.imports import parquet
from kizuna.imports.importer import ImportOptions
from kizuna.imports.models import ImportJob
from kizuna.imports.reader import (
    Columns,
    ImportFileError,
    Source,
    detect_encoding,
    map_headers,
    open_source,
    report_columns,
)
from kizuna.imports.report import REPORT_COLUMNS, Reject, ReportEntry, read_report
from kizuna.imports.runner import KINDS, importer_for
from kizuna.imports.vcard import FIELDS as VCARD_FIELDS
from kizuna.imports.vcard import open_vcard
from kizuna.outbox.service import emit

IGNORE = "-"
TO_ATTRIBUTES = "+attributes"
# Encodings offered on the mapping page besides the detected one.
ENCODINGS = ("utf-8", "utf-8-sig", "cp932", "euc_jp", "iso2022_jp", "utf-16", "latin-1")
EDITABLE = ("uploaded", "previewed", "failed")
FINISHED = ("done", "failed")
_COPY_CHUNK = 1 << 20


def imports_dir() -> Path:
    """Where uploaded files and their reject reports live: ``KIZUNA_HOME/imports``."""
    folder = get_settings().home / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_path(job: ImportJob) -> Path:
    # The stored name is Kizuna's own (a UUID), so the path never leaves the imports folder.
    return imports_dir() / Path(job.stored_name).name


# --- upload and mapping ----------------------------------------------------------------------------------------


def upload(session: Session, *, actor: Actor, kind: str, file_name: str, stream: BinaryIO) -> ImportJob:
    """Store an uploaded file under the imports folder as a new job with its detected encoding and proposed
    mapping. Refuses (nothing stored) a file over ``import_upload_max_bytes``, an empty one, or one whose
    encoding or header cannot be read."""
    require(actor, "data:import")
    if kind not in KINDS:
        raise ValidationError(
            f"unknown import kind '{kind}'; choose one of {', '.join(KINDS)}", field="kind", key="imports.error.kind"
        )
    name = Path((file_name or "").replace("\\", "/")).name.strip()[:255]
    if not name:
        raise ValidationError("choose a file to import", field="file", key="imports.error.no_file")
    suffix = ".jsonl" if kind == "events" and name.lower().endswith((".jsonl", ".ndjson")) else ".csv"
    if kind in ("vcard", "customers") and name.lower().endswith((".vcf", ".vcard")):
        suffix = ".vcf"
    elif kind == "vcard":
        raise ValidationError(
            f"{name}: a vCard import takes a .vcf file",
            field="file",
            key="imports.error.not_vcard",
            params={"file": name},
        )
    elif name.lower().endswith(".parquet"):
        suffix = ".parquet"
    stored = f"{uuid.uuid4().hex}{suffix}"
    path = imports_dir() / stored
    limit = get_settings().import_upload_max_bytes
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := stream.read(_COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ValidationError(
                        f"the file is larger than {limit:,} bytes (KIZUNA_IMPORT_UPLOAD_MAX_BYTES)",
                        field="file",
                        key="imports.error.too_large",
                        params={"limit": f"{limit:,}"},
                    )
                out.write(chunk)
        if size == 0:
            raise ValidationError("the file is empty", field="file", key="imports.error.empty")
        try:
            if suffix == ".vcf":
                # Read whole: a card with broken encoding is refused at upload, naming its card and line.
                vcf = open_vcard(path)
                encoding, lines, headers = vcf.encoding, vcf.line_estimate, list(vcf.headers)
            elif parquet.is_parquet(path):
                # A warehouse export: typed columns, no encoding to guess (read as the CLI reads it).
                source = open_source(path, Columns({}))
                encoding, lines, headers = source.encoding, source.line_estimate, source.headers
            else:
                encoding, lines = detect_encoding(path)
                headers = _headers(path, encoding)
        except ImportFileError as exc:
            if suffix == ".vcf":
                params = {"detail": exc.message}
                raise ValidationError(exc.message, field="file", key="imports.error.vcard", params=params) from None
            raise ValidationError(exc.message, field="file", key="imports.error.unreadable") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    proposed = propose_mapping(kind, headers, suffix)
    job = ImportJob(
        user_id=actor.user_id,
        kind=kind,
        file_name=name,
        stored_name=stored,
        size_bytes=size,
        encoding=encoding,
        headers=list(proposed),
        mapping=proposed,
        status="uploaded",
        rows_total=max(lines - (0 if suffix == ".jsonl" else 1), 0),  # a vCard source counts cards + 1
        counts={},
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="import.upload",
        entity_type="import_job",
        entity_id=job.id,
        details={"kind": kind, "file": name, "bytes": size, "encoding": encoding},
        summary=f"uploaded {name} to import {kind}",
    )
    return job


def _headers(path: Path, encoding: str) -> list[str]:
    if path.suffix == ".jsonl":
        from kizuna.imports.reader import _jsonl_keys  # the JSON Lines "header": keys of the first objects

        return _jsonl_keys(path, encoding)
    with path.open(encoding=encoding, newline="") as fh:
        headers = next(csv.reader(fh), None) or []
    if not any(h.strip() for h in headers):
        raise ImportFileError(
            f"{path.name}: the file is empty or has no header line",
            key="error.import_empty_file",
            params={"file": path.name},
        )
    return headers


def keeps_attributes(kind: str) -> bool:
    """Whether columns of this kind can be kept beside the fields (customer attributes, event properties)."""
    return importer_for(kind).keeps_extras(ImportOptions(file_name="", extra_to_attributes=True))


def field_choices(kind: str, session: Session | None = None) -> list[str]:
    """The fields a column of this kind of file can fill; with ``session``, also the custom fields
    (``attributes.<key>``) of a kind that has them."""
    columns = importer_for(kind).columns
    # In the importer's own order (identifiers, contact, name, reading, address...), not alphabetical by code:
    # sorted codes read as a shuffled list once shown as Japanese labels.
    choices = list(dict.fromkeys([*columns.aliases, *columns.fallbacks]))
    if session is not None and columns.custom_attributes:
        from kizuna.fields import service as custom_fields

        choices += [f"attributes.{f.key}" for f in custom_fields.definitions(session, "customer")]
    return choices


def propose_mapping(kind: str, headers: list[str], suffix: str = ".csv") -> dict[str, str]:
    """Each header's field as the CLI would map it; other columns ignored (or kept as properties of events)."""
    if suffix == ".vcf":
        # A card's properties have fixed fields; company, title and note are kept as attributes.
        return {h: h if h in VCARD_FIELDS else TO_ATTRIBUTES for h in headers}
    columns = importer_for(kind).columns
    try:
        # Without the required groups: a missing column is shown on the mapping page, where it can be fixed.
        found = map_headers(
            headers,
            Columns(columns.aliases, fallbacks=columns.fallbacks, custom_attributes=columns.custom_attributes),
            None,
            synonyms_ok=True,
        )
    except ImportFileError:
        found = {}
    rest = TO_ATTRIBUTES if kind == "events" else IGNORE
    reported = set(report_columns(headers))
    seen: dict[str, str] = {}
    taken: set[str] = set()
    for header in headers:
        if not header.strip() or header in seen:
            continue
        if header in reported:
            seen[header] = IGNORE  # a corrected reject report: why the row was rejected is no data
            continue
        target = found.get(header)
        # Two headers that name one field (JSON keys may): the first keeps it.
        if target is not None and target not in taken:
            seen[header] = target
            taken.add(target)
        else:
            seen[header] = rest
    return seen


def ordered_mapping(job: ImportJob) -> dict[str, str]:
    """The job's mapping in the file's column order."""
    mapping = job.mapping or {}
    return {h: mapping[h] for h in (job.headers or []) if h in mapping} | mapping


def get_job(session: Session, *, actor: Actor, job_id: int) -> ImportJob:
    require(actor, "data:import")
    job = session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"import {job_id} not found", key="imports.error.not_found")
    return job


def list_jobs(session: Session, *, actor: Actor, limit: int = 50) -> list[ImportJob]:
    """The most recent jobs, newest first."""
    require(actor, "data:import")
    return list(session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit)))


def uploaders(session: Session, jobs: list[ImportJob]) -> dict[int, str]:
    """user id -> e-mail of the people who uploaded ``jobs``."""
    return auth.user_emails(session, {j.user_id for j in jobs if j.user_id is not None})


def update_mapping(
    session: Session,
    *,
    actor: Actor,
    job_id: int,
    mapping: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> ImportJob:
    """Set the job's column mapping (header -> field, ``-`` or ``+attributes``) and encoding.

    The file's headers must all be named by the stored mapping afterwards; headers the call leaves out keep
    their choice. The job becomes ``previewed`` when the file can be imported with it, else stays ``uploaded``
    (``check`` then says why).
    """
    job = get_job(session, actor=actor, job_id=job_id)
    if job.status not in EDITABLE:
        raise Conflict(
            f"import {job.id} is {job.status}; its mapping can no longer change",
            field="status",
            key="imports.error.not_editable",
        )
    if encoding and encoding.strip() and encoding.strip() != job.encoding:
        try:
            name = codecs.lookup(encoding.strip()).name
        except LookupError:
            raise ValidationError(
                f"unknown encoding '{encoding}'", field="encoding", key="imports.error.encoding"
            ) from None
        try:
            open_source(file_path(job), Columns({}), encoding=name)
        except ImportFileError as exc:
            raise ValidationError(exc.message, field="encoding", key="imports.error.encoding_fails") from None
        job.encoding = name
        headers = _headers(file_path(job), name)
        if headers != list(job.headers or []):
            # Read in another encoding the header names other columns: propose their mapping afresh (the
            # choices sent with this change were made for the old names).
            proposed = propose_mapping(job.kind, headers, file_path(job).suffix)
            job.headers, job.mapping, mapping = list(proposed), proposed, None
    if mapping is not None:
        allowed = {
            *field_choices(job.kind, session),
            IGNORE,
            *([TO_ATTRIBUTES] if keeps_attributes(job.kind) else []),
        }
        new = dict(job.mapping or {})
        for header, choice in mapping.items():
            if header not in new:
                raise ValidationError(
                    f"the file has no column '{header}'", field="mapping", key="imports.error.no_column",
                    params={"column": header},
                )  # fmt: skip
            if choice not in allowed:
                raise ValidationError(
                    f"'{choice}' is not a field of {job.kind} (column '{header}')",
                    field="mapping",
                    key="imports.error.unknown_field",
                    params={"column": header},
                )
            new[header] = choice
        job.mapping = new
    try:
        check(job)
    except ImportFileError:
        job.status = "uploaded"
    else:
        job.status = "previewed"
    return job


def options_of(job: ImportJob) -> tuple[dict[str, str], bool]:
    """The CLI's ``--map`` overrides and ``--extra-to-attributes`` for the job's mapping."""
    overrides = {h: c for h, c in (job.mapping or {}).items() if c != TO_ATTRIBUTES}
    return overrides, any(c == TO_ATTRIBUTES for c in (job.mapping or {}).values())


def check(job: ImportJob) -> Source:
    """The job's file opened with its mapping and encoding; ImportFileError says what stops the import."""
    importer = importer_for(job.kind)
    overrides, _ = options_of(job)
    source = open_source(file_path(job), importer.columns, overrides=overrides, encoding=job.encoding or None)
    kept = [h for h, c in (job.mapping or {}).items() if c == TO_ATTRIBUTES and h in source.mapping]
    if kept:
        raise ImportFileError(
            f"column '{kept[0]}' is named like the field '{source.mapping[kept[0]]}', so it cannot be kept in "
            "attributes; map it to the field or ignore it"
        )
    return source


# --- running ---------------------------------------------------------------------------------------------------


def start(session: Session, *, actor: Actor, job_id: int) -> ImportJob:
    """Queue the job: it becomes ``queued`` and an ``import.queued`` message goes to the worker, in the
    caller's transaction. A job small enough to run in the request (``runs_inline``) is then run by the edge
    with ``execute`` after the commit; the worker finds it taken (or done) and leaves it."""
    job = get_job(session, actor=actor, job_id=job_id)
    if job.status not in EDITABLE:
        raise Conflict(f"import {job.id} is already {job.status}", field="status", key="imports.error.not_editable")
    try:
        source = check(job)
    except ImportFileError as exc:
        raise ValidationError(exc.message, field="mapping", key="imports.cannot_run") from None
    job.status = "queued"
    job.rows_total = max(source.line_estimate - (0 if source.format == "jsonl" else 1), 0)
    job.rows_done = job.inserted = job.updated = job.unchanged = job.rejected = 0
    job.counts = {}
    job.error = None
    job.runner = None
    job.heartbeat_at = None
    job.started_at = job.finished_at = None
    job.report_name = None
    emit(session, "import.queued", {"job_id": job.id, "kind": job.kind}, origin=actor.origin)
    audit.record(
        session,
        actor=actor,
        action="import.run",
        entity_type="import_job",
        entity_id=job.id,
        details={"kind": job.kind, "file": job.file_name, "mapping": job.mapping, "encoding": job.encoding},
        summary=f"started importing {job.file_name} ({job.kind})",
    )
    return job


def runs_inline(job: ImportJob) -> bool:
    """Whether the request that starts the job runs it (a small file) rather than leaving it to the worker."""
    return job.rows_total <= get_settings().import_inline_rows


def stale_after() -> dt.timedelta:
    """A running job whose heartbeat is older than this has lost its process (two missed renewals)."""
    return dt.timedelta(seconds=2 * get_settings().outbox_lease_seconds)


def is_stalled(job: ImportJob, now: dt.datetime | None = None) -> bool:
    return (
        job.status == "running"
        and job.heartbeat_at is not None
        and job.heartbeat_at < (now or utcnow()) - stale_after()
    )


# --- the reject report -----------------------------------------------------------------------------------------


# How a reject or warning is shown to the person downloading the report: (field, reason) in their language.
Describe = Callable[[Reject, bool], tuple[str, str]]


def english(reject: Reject, warning: bool) -> tuple[str, str]:
    """The field and reason as the report file stores them (the API's and the CLI's language)."""
    return reject.field, f"warning: {reject.reason}" if warning else reject.reason


def rejects_csv(session: Session, *, actor: Actor, job_id: int, describe: Describe = english) -> Iterator[bytes]:
    """The job's reject report as a file to correct and import again (UTF-8 with BOM): one row per rejected or
    warned line, ``line,field,reason,reason_code,severity`` and then the row's own cells under the file's own
    header. A line with several problems lists them one per line of text in one cell, codes likewise;
    ``severity`` is ``error`` when the row was rejected, ``warning`` when it was imported without a value.
    Reasons are worded by ``describe``; every cell a spreadsheet would run as a formula is neutralised, as the
    exports do."""
    headers, entries = read_report(_report_path(session, actor=actor, job_id=job_id))
    return _report_rows(headers, entries, describe)


def report_entries(session: Session, *, actor: Actor, job_id: int, limit: int = 100) -> list[ReportEntry]:
    """The first ``limit`` rejects and warnings of the job's report, in line order (the job page's list)."""
    job = get_job(session, actor=actor, job_id=job_id)
    if not job.report_name or not (path := imports_dir() / Path(job.report_name).name).is_file():
        return []
    _, entries = read_report(path)
    with contextlib.closing(entries):
        return list(itertools.islice(entries, limit))


def _report_path(session: Session, *, actor: Actor, job_id: int) -> Path:
    job = get_job(session, actor=actor, job_id=job_id)
    if not job.report_name:
        raise NotFound(f"import {job.id} has no reject report", key="imports.error.no_report")
    path = imports_dir() / Path(job.report_name).name
    if not path.is_file():
        raise NotFound(f"the reject report of import {job.id} is gone", key="imports.error.no_report")
    return path


def _report_rows(headers: list[str], entries: Iterator[ReportEntry], describe: Describe) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out)
    yield codecs.BOM_UTF8
    writer.writerow([neutralize(cell) for cell in (*REPORT_COLUMNS, *headers)])
    for n, group in enumerate(_by_line(entries)):
        shown = [describe(e.reject, e.warning) for e in group]
        row = [
            str(group[0].reject.line),
            "\n".join(field for field, _ in shown),
            "\n".join(reason for _, reason in shown),
            "\n".join(e.reject.code for e in group),
            "warning" if all(e.warning for e in group) else "error",
            *group[0].cells,
        ]
        writer.writerow([neutralize(cell) for cell in row])
        if n % 1000 == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


def _by_line(entries: Iterator[ReportEntry]) -> Iterator[list[ReportEntry]]:
    """Consecutive entries of one line together (the report is in line order): a row to fix appears once, so
    the corrected file imports each row once."""
    for _, group in itertools.groupby(entries, key=lambda e: e.reject.line):
        yield list(group)


def report_file_name(job: ImportJob) -> str:
    """The download's file name: the uploaded file's name with ``-rejects.csv``."""
    stem = Path(job.file_name).stem or "import"
    return f"{stem}-rejects.csv"
