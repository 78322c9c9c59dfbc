"""``kizuna import customers|products|orders|events FILE``: a thin edge over ``run_import``.

Exit codes: 0 every row landed, 1 some rows were rejected (see the report), 2 the file could not be imported.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.errors import KizunaError
from kizuna.imports.report import ImportReport
from kizuna.imports.runner import KINDS, ImportAborted, run_import

imports_app = typer.Typer(
    help="Import customers, products, orders or events from CSV or Parquet (events also JSON Lines), "
    "contacts from vCard."
)
SHOWN_REJECTS = 50


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items:
        header, sep, target = item.rpartition("=")
        if not sep or not header.strip():
            raise typer.BadParameter(f"'{item}' is not 'CSV Header=field'", param_hint="--map")
        mapping[header.strip()] = target.strip()
    return mapping


def _actor(engine: Engine, email: str | None) -> Actor:
    from kizuna.auth import service as auth
    from kizuna.db import transaction

    if not email:
        return auth.cli_actor()
    with transaction(engine) as session:
        return auth.actor_for_email(session, email).via("cli")


def import_command(
    kind: str,
    file: Path,
    *,
    mapping: list[str],
    dry_run: bool,
    report: Path | None,
    extra_to_attributes: bool,
    create_products: bool,
    encoding: str | None = None,
    as_user: str | None = None,
) -> None:
    """Run one import with a progress bar and print its report; exits with the codes in the module docstring."""
    from kizuna.db import get_engine, migrate

    console = Console(stderr=True)
    engine = get_engine()
    migrate(engine)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"import {kind}", total=None)

            def advance(done: int, estimate: int) -> None:
                bar.update(task, completed=done, total=max(done, estimate))

            result = run_import(
                engine,
                kind,
                file,
                actor=_actor(engine, as_user),
                mapping=_parse_map(mapping),
                dry_run=dry_run,
                report_path=report,
                progress=advance,
                extra_to_attributes=extra_to_attributes,
                create_products=create_products,
                encoding=encoding,
            )
    except ImportAborted as exc:
        console.print(f"[red]import stopped:[/red] {exc.message}")
        _print_report(console, exc.report)
        raise typer.Exit(2) from None
    except KizunaError as exc:
        console.print(f"[red]cannot import {file}:[/red] {exc.message}")
        raise typer.Exit(2) from None
    _print_report(console, result)
    raise typer.Exit(1 if result.rejected else 0)


def _print_report(console: Console, report: ImportReport) -> None:
    title = f"{'DRY RUN: ' if report.dry_run else ''}import {report.kind} from {report.file} ({report.encoding})"
    counts = Table(title=title, show_header=False)
    for name, value in report.counts().items():
        counts.add_row(name, f"{value:,}")
    counts.add_row("time", f"{report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    console.print(counts)
    if report.ignored_columns:
        ignored = ", ".join(report.ignored_columns)
        console.print(f"ignored columns (no matching field; use --map or --extra-to-attributes): {ignored}")
    if report.warnings:
        warnings = Table(title=f"{len(report.warnings):,} value(s) left out of imported rows")
        warnings.add_column("line", justify="right")
        warnings.add_column("field")
        warnings.add_column("reason")
        for w in sorted(report.warnings, key=lambda w: w.line)[:SHOWN_REJECTS]:
            warnings.add_row(str(w.line), w.field, w.reason)
        console.print(warnings)
    if report.rejects:
        rejects = Table(title=f"{report.rejected:,} rejected row(s)")
        rejects.add_column("line", justify="right")
        rejects.add_column("field")
        rejects.add_column("reason")
        for r in sorted(report.rejects, key=lambda r: r.line)[:SHOWN_REJECTS]:
            rejects.add_row(str(r.line), r.field, r.reason)
        console.print(rejects)
        if len(report.rejects) > SHOWN_REJECTS:
            console.print(f"... {len(report.rejects) - SHOWN_REJECTS:,} more in the report file")
    if report.report_path is not None:
        console.print(f"report: {report.report_path}")


def _register(kind: str) -> None:
    def command(
        file: Path = typer.Argument(..., help="CSV file (UTF-8, Shift_JIS/CP932, EUC-JP) or Parquet file."),
        map_: list[str] = typer.Option([], "--map", help="'CSV Header=field' (repeatable); 'Header=-' ignores it."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
        report: Path | None = typer.Option(None, "--report", help="Where to write the rejected rows as CSV."),
        extra_to_attributes: bool = typer.Option(
            False, "--extra-to-attributes", help="Keep unknown columns in customer attributes."
        ),
        create_products: bool = typer.Option(
            False, "--create-products", help="Orders: create a product for an unknown SKU instead of rejecting."
        ),
        encoding: str | None = typer.Option(
            None, "--encoding", help="The file's encoding (utf-8, cp932, euc_jp, latin-1...) instead of detecting it."
        ),
        as_user: str | None = typer.Option(
            None,
            "--as",
            help="E-mail of the Kizuna user the import is recorded as (their role must allow importing); "
            "by default the operating-system user running the command.",
        ),
    ) -> None:
        import_command(
            kind,
            file,
            mapping=map_,
            dry_run=dry_run,
            report=report,
            extra_to_attributes=extra_to_attributes,
            create_products=create_products,
            encoding=encoding,
            as_user=as_user,
        )

    help_text = f"Import {kind} from a CSV or Parquet file" + (
        " or JSON Lines (.jsonl/.ndjson)." if kind == "events" else "."
    )
    if kind == "vcard":
        help_text = (
            "Import contacts from a vCard 2.1/3.0/4.0 file (.vcf, one or many cards) as customers, by the same "
            "identity rules as a customers CSV; company, title and note are kept as attributes."
        )
    imports_app.command(kind, help=help_text)(command)


for _kind in KINDS:
    _register(_kind)
