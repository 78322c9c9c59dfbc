"""Importing customers: normalise each row, recognise the same person by email, phone or external id, write in bulk.

Rows that share an identity (within the file or with a stored customer) become one customer; a row that links
two stored customers merges them (the older one survives). The work is split by responsibility:

- ``columns``: the fields a file may fill and the header names each is recognised by (add a field here);
- ``parsing``: one row to typed, normalised values (runs in parser processes, never touches the database);
- ``staging``: the set-based path for new people, and the scratch files parser processes hand batches over in;
- ``writing``: the full path (group rows into people, merge, update, insert, identities, tags, consents).

``CustomerImporter`` below ties them together behind the runner's ``Importer`` protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from kizuna.customers import identities
from kizuna.customers.importer.columns import COLUMNS
from kizuna.customers.importer.companies import link_companies
from kizuna.customers.importer.parsing import CustomerRow, parse_row
from kizuna.customers.importer.staging import insert_strangers, stage_rows
from kizuna.customers.importer.writing import write_people
from kizuna.customers.models import Customer
from kizuna.imports.importer import ImportOptions, Staged, Warn, WriteContext, ignore_warning
from kizuna.imports.reader import Record


class CustomerImporter:
    kind = "customers"
    columns = COLUMNS
    parallel = True
    stages = True
    # Non-unique indexes on random keys that no step of the import reads (it finds people through the unique
    # customer_identities index); a first import into an empty table builds them once at the end instead.
    bulk_indexes = (
        (
            Customer.__table__,
            ("ix_customers_email", "ix_customers_phone", "ix_customers_full_name", "ix_customers_external_id"),
        ),
    )

    def __init__(self, *, set_based: bool = True) -> None:
        # set_based=False sends every row through the full path (tests prove both paths write the same).
        self.set_based = set_based

    def keeps_extras(self, options: ImportOptions) -> bool:
        return options.extra_to_attributes

    def parse(self, record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> CustomerRow:
        return parse_row(record, options, warn)

    def preview_values(self, parsed: CustomerRow) -> dict[str, Any]:
        shown = {"full_name": parsed.names[0] or None, "full_name_kana": parsed.names[1], **parsed.values}
        shown.update(parsed.more_ids)
        if parsed.tags:
            shown["tags"] = parsed.tags
        if parsed.email_opt_in is not None:
            shown["email_opt_in"] = parsed.email_opt_in
        return {k: v for k, v in shown.items() if v is not None}

    def batches(self, rows: Iterable[CustomerRow | Staged], size: int) -> Iterator[list[CustomerRow] | Staged]:
        batch: list[CustomerRow] = []
        for row in rows:
            if isinstance(row, Staged):
                # A staged range is a batch of its own (the parser sized it so).
                if batch:
                    yield batch
                    batch = []
                yield row
                continue
            batch.append(row)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    def stage(self, rows: list[CustomerRow], path: Path) -> None:
        stage_rows(rows, path)

    def write(self, session: Session, batch: list[CustomerRow] | Staged, ctx: WriteContext) -> None:
        # Most rows of a big file are people nobody has seen; they go in set-based, the rest one group at a time.
        rows = insert_strangers(session, batch, ctx) if self.set_based or isinstance(batch, Staged) else batch
        if rows:
            write_people(session, rows, ctx)
        if ctx.options.link_companies and not isinstance(batch, Staged):
            # Contact cards (never staged: a vCard file is read by one process) join their company.
            keys = {key for row in batch for key in row.identities()}
            written = {i for ids in identities.holders(session, keys).values() for i in ids}
            ctx.report.note("linked to their company", link_companies(session, written, actor=ctx.actor))


IMPORTER = CustomerImporter()
