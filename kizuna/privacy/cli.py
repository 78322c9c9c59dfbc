"""``kizuna privacy provisions|purge|export-subject``: the third-party provision records (APPI), their retention, and
a data-subject access export of one customer."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

privacy_app = typer.Typer(
    help="Privacy: third-party provision records (APPI), their retention, data-subject exports.", no_args_is_help=True
)
COLUMNS = ("id", "provided_at", "customer_id", "recipient", "fields", "purpose", "via", "reference", "provided_by")


def _row(p) -> dict:  # noqa: ANN001
    return {
        "id": p.id,
        "provided_at": p.provided_at.isoformat(),
        "customer_id": p.customer_id,
        "recipient": p.recipient,
        "fields": list(p.fields),
        "purpose": p.purpose,
        "via": p.via,
        "reference": p.reference,
        "provided_by": p.provided_by,
    }


@privacy_app.command("provisions")
def provisions(
    customer: Annotated[int | None, typer.Option("--customer", help="Only this customer's records.")] = None,
    recipient: Annotated[str | None, typer.Option("--recipient", help="Recipient containing this text.")] = None,
    via: Annotated[str | None, typer.Option("--via", help="audience_export, webhook ...")] = None,
    since: Annotated[str | None, typer.Option("--from", help="Provided on or after this day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Provided before the end of this day (YYYY-MM-DD).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many records, newest first.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """List third-party provision records (who received which fields of whom, when), newest first."""
    from kizuna.db import new_session, ready_engine
    from kizuna.privacy.service import list_provisions

    params: dict[str, str] = {}
    if customer is not None:
        params["customer_id"] = str(customer)
    if recipient:
        params["recipient__contains"] = recipient
    if via:
        params["via"] = via
    try:
        if since:
            params["provided_at__gte"] = dt.date.fromisoformat(since).isoformat()
        if until:
            params["provided_at__lt"] = (dt.date.fromisoformat(until) + dt.timedelta(days=1)).isoformat()
    except ValueError as exc:
        raise _fail(KizunaError(f"--from/--to must be days like 2026-11-28 ({exc})")) from exc
    if fmt not in ("table", "json", "csv"):
        raise _fail(KizunaError(f"unknown format '{fmt}'; choose table, json or csv"))
    try:
        with new_session(ready_engine()) as session:
            rows, _ = list_provisions(session, actor=CLI, params=params, limit=limit)
            records = [_row(p) for p in rows]
    except KizunaError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(COLUMNS)
        for r in records:
            writer.writerow([";".join(r[c]) if c == "fields" else r[c] for c in COLUMNS])
        return
    out = Table(title=f"{len(records)} provision record(s)")
    for column in COLUMNS:
        out.add_column(column)
    for r in records:
        out.add_row(*[", ".join(r[c]) if c == "fields" else str(r[c] if r[c] is not None else "") for c in COLUMNS])
    console.print(out)


@privacy_app.command("purge")
def purge() -> None:
    """Delete provision records older than the three years APPI asks for (the worker does it daily)."""
    from kizuna.db import ready_engine, transaction
    from kizuna.privacy.service import RETENTION_YEARS, purge_expired

    try:
        with transaction(ready_engine()) as session:
            count = purge_expired(session, actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"purged {count:,} provision record(s) older than {RETENTION_YEARS} years")


@privacy_app.command("export-subject")
def export_subject(
    customer_id: Annotated[int, typer.Argument(help="The customer's id (a merged id exports its survivor).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ZIP file to write.")],
) -> None:
    """Write everything held about one customer to a ZIP of JSON files (a data-subject access request; audited).

    The file appears only once the export and its audit entry are committed; until then it is written beside it.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from kizuna.db import ready_engine, transaction
    from kizuna.exports.service import replacing
    from kizuna.privacy.subject_export import write_subject_export

    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as bar:
            task = bar.add_task("exporting", total=None)
            with replacing(output) as out, transaction(ready_engine()) as session:
                result = write_subject_export(
                    session,
                    actor=CLI,
                    customer_id=customer_id,
                    out=out,
                    progress=lambda table: bar.update(task, description=f"exporting {table}"),
                )
    except KizunaError as exc:
        raise _fail(exc) from exc
    rows = sum(result.tables.values())
    held = sum(1 for n in result.tables.values() if n)
    merged = f" (with merged {', '.join(map(str, result.merged_ids))})" if result.merged_ids else ""
    console.print(f"wrote {rows:,} rows from {held} tables about customer {result.customer_id}{merged} to {output}")
