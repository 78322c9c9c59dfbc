"""``kizuna export ...``: lists (customers, companies, products, orders, events), whole tables and ad audiences.

Every sub-command writes ``-o/--output FILE`` beside it and puts it in place only once the export (and its audit
entry, and for audiences the provision records) is committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

# The list kinds of ``exports.service.KINDS``, named here so the command starts without loading pyarrow and every
# model (tests/exports/test_tables.py checks the two agree).
LIST_KINDS = ("customers", "companies", "products", "orders", "events", "deals")

export_app = typer.Typer(help="Export lists, whole tables and ad-platform audiences.", no_args_is_help=True)
Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]


def _engine():  # noqa: ANN202
    from kizuna.cli import _engine as engine

    return engine()


def _run(label: str, output: Path, write) -> int:  # noqa: ANN001
    """Run ``write(session, out, progress)`` in one transaction with ``output`` replaced only on success."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from kizuna.db import transaction
    from kizuna.exports.service import replacing

    engine = _engine()
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
            task = bar.add_task(label, total=None)
            with replacing(output) as out, transaction(engine) as session:
                return write(session, out, lambda n: bar.update(task, description=f"{label}: {n:,}"))
    except KizunaError as exc:
        raise _fail(exc) from exc


def _register(kind: str) -> None:
    def command(
        output: Output,
        filters: Annotated[
            list[str] | None, typer.Option("--filter", "-f", help="field[__op]=value, repeatable.")
        ] = None,
        fmt: Annotated[str | None, typer.Option("--format", help="csv or parquet (default: from the file name).")] = (
            None
        ),
    ) -> None:
        from kizuna.exports.service import write_export

        chosen = fmt or output.suffix.lstrip(".").lower()
        params: dict[str, str] = {}
        for item in filters or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise _fail(KizunaError(f"filter '{item}' must look like field=value or field__op=value"))
            params[key.strip()] = value.strip()
        count = _run(
            f"exporting {kind}",
            output,
            lambda session, out, progress: write_export(
                session, actor=CLI, kind=kind, params=params, fmt=chosen, out=out, progress=progress
            ),
        )
        console.print(f"wrote {count:,} {kind} to {output}")

    export_app.command(kind, help=f"Export {kind} to CSV or Parquet, with the API's filters (audited).")(command)


for _kind in LIST_KINDS:
    _register(_kind)


@export_app.command("table")
def table(
    name: Annotated[str, typer.Argument(help="A table: customers, orders, order_lines, events, consents ...")],
    output: Output,
    fmt: Annotated[str | None, typer.Option("--format", help="parquet or csv (default: from the file name).")] = None,
) -> None:
    """Export a whole table as stored (every row and column but secrets) to Parquet or CSV, for a warehouse."""
    from kizuna.exports.tables import write_table

    chosen = (fmt or output.suffix.lstrip(".")).lower()
    count = _run(
        f"exporting table {name}",
        output,
        lambda session, out, progress: write_table(
            session, actor=CLI, name=name, fmt=chosen, out=out, progress=progress
        ),
    )
    console.print(f"wrote {count:,} rows of {name} to {output}")


@export_app.command("audience")
def audience(
    segment: Annotated[str, typer.Option("--segment", help="The segment's id or name.")],
    platform: Annotated[str, typer.Option("--platform", help="google (Customer Match) or meta (Custom Audiences).")],
    output: Output,
) -> None:
    """Write a segment's members who consented to advertising as an ad platform's audience file (hashed)."""
    from kizuna.audiences.service import find_segment, write_audience

    results = []

    def write(session, out, progress):  # noqa: ANN001, ANN202
        found = find_segment(session, segment, actor=CLI)
        result = write_audience(session, actor=CLI, segment_id=found.id, platform=platform, out=out, progress=progress)
        results.append(result)
        return result.rows

    count = _run(f"exporting audience of {segment}", output, write)
    result = results[0]
    console.print(
        f"wrote {count:,} customers to {output} ({result.members:,} members; left out: "
        f"{result.without_consent:,} without advertising consent, {result.without_identifier:,} with nothing to match)"
    )
