"""What each kind of import provides to the runner: its columns, a row parser and a batch writer.

The runner owns files, batches, transactions, audit and the report; a domain's ``importer.py`` owns only what
its rows mean. ``parse`` runs in worker processes for big files, so it must not touch the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pydantic
from sqlalchemy import Table
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.errors import KizunaError, pydantic_message
from kizuna.imports.reader import Columns, Record
from kizuna.imports.report import ImportReport, Reason
from kizuna.imports.values import CellError


@dataclass(frozen=True)
class ImportOptions:
    file_name: str
    # Of the file's bytes: recognises the same file in a later run (see customers.models.CustomerImportMark).
    file_sha256: str = ""
    extra_to_attributes: bool = False
    # Contact cards (vCard, a scanned card): link each contact to the company its card names.
    link_companies: bool = False
    create_products: bool = False
    # The custom fields an ``attributes.<key>`` column is checked against (kizuna.fields.service.FieldRule),
    # and the users a user field may name: read before parsing, as parsers have no database.
    custom_fields: tuple[Any, ...] = ()
    user_ids: frozenset[int] = frozenset()


@dataclass
class WriteContext:
    actor: Actor
    options: ImportOptions
    report: ImportReport


# The schema name a staged range's file is attached under on the writer's SQLite connection.
STAGED_SCHEMA = "kz_staged"


@dataclass(frozen=True)
class Staged:
    """Parsed rows a parser process wrote to a scratch SQLite file, for a writer that reads them in SQL.

    Only for SQLite imports, where moving rows between processes as Python objects would cost the single
    writer more than the SQL that uses them; the file is one batch.
    """

    path: Path
    rows: int


@dataclass(frozen=True)
class Rejected:
    """A row ``parse`` refused: (field, reason) pairs."""

    line: int
    errors: list[tuple[str, Reason]]


class RowRejected(Exception):
    def __init__(self, errors: list[tuple[str, Reason]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


# Receives (field, reason) for a value ``parse`` left out of a row it otherwise accepted.
Warn = Callable[[str, Reason], None]


def ignore_warning(field: str, reason: Reason) -> None:
    """The ``warn`` of a caller that does not report warnings (tests that parse rows by hand)."""


@dataclass(frozen=True)
class Warned:
    """What ``parse`` left out of an accepted row: (field, reason) pairs, reported as warnings."""

    line: int
    warnings: list[tuple[str, Reason]]


class Importer(Protocol):
    """What the runner needs from one kind of import (customers, products, orders, events).

    Every member is declared by every importer (``PlainImporter`` holds the defaults), so the runner asks no
    importer whether it has an ability and never branches on the kind.
    """

    kind: str
    columns: Columns
    # Parse rows in worker processes when the file is big (worth it when parsing is the expensive part).
    parallel: bool
    # Whether parser processes may hand over SQLite batches as scratch files written by ``stage``.
    stages: bool
    # (table, index names) that a first bulk load into an empty SQLite table may drop and build once at the end.
    bulk_indexes: Sequence[tuple[Table, Sequence[str]]]

    def keeps_extras(self, options: ImportOptions) -> bool:
        """Whether columns that map to no field are kept (attributes, properties) rather than ignored."""
        ...

    def parse(self, record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> Any:
        """The row as typed values; raises RowRejected naming the field at fault. A bad optional value may be
        left out instead, reported through ``warn``."""
        ...

    def preview_values(self, parsed: Any) -> dict[str, Any]:
        """What a parsed row would store, by field name (the import page's preview of the first rows)."""
        ...

    def batches(self, rows: Iterable[Any], size: int) -> Iterator[Any]:
        """Group parsed rows into batches of about ``size`` rows; each batch is written in one transaction."""
        ...

    def write(self, session: Session, rows: Any, ctx: WriteContext) -> None:
        """Write one batch, counting into ``ctx.report`` and rejecting rows with ``ctx.report.reject``."""
        ...

    def stage(self, rows: list[Any], path: Path) -> None:
        """Write parsed rows to a new SQLite file at ``path`` (in a parser process); only when ``stages``."""
        ...


class PlainImporter:
    """The defaults of an importer that parses in one process, stages nothing and keeps no extra columns."""

    parallel = False
    stages = False
    bulk_indexes: Sequence[tuple[Table, Sequence[str]]] = ()

    def keeps_extras(self, options: ImportOptions) -> bool:
        return False

    def batches(self, rows: Iterable[Any], size: int) -> Iterator[Any]:
        return chunked(rows, size)

    def stage(self, rows: list[Any], path: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not stage rows")


def chunked(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def errors_from(exc: pydantic.ValidationError) -> list[tuple[str, Reason]]:
    """(field, reason) for each problem Pydantic found, with the offending value quoted; the reason's key is the
    one the UI's forms show for the same error (``kizuna.errors.pydantic_message``)."""
    out = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "row"
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if isinstance(value, str) and value not in message:
            message = f"{message} (got '{value}')"
        key, params = pydantic_message(error)
        if key != "error.value_error":
            params.pop("message", None)  # the English message is the text; only value_error's shows it
        out.append((field, Reason(f"{field}: {message}", key, params)))
    return out


def field_error(field: str, exc: Exception | Reason) -> tuple[str, Reason]:
    """(field, reason) for a value a parser refused: a Reason, a KizunaError or a ValueError of
    ``kizuna.imports.values`` (each names its key; any other error is shown as its English message)."""
    if isinstance(exc, Reason):
        return field, exc.reworded(f"{field}: {exc.text}")
    if isinstance(exc, KizunaError | CellError) and exc.key:
        text = exc.message if isinstance(exc, KizunaError) else str(exc)
        return field, Reason(f"{field}: {text}", exc.key, exc.params)
    return field, Reason(f"{field}: {exc}", "error.value_error", {"message": str(exc)})
