"""``kizuna deals list|move``: the pipeline from a terminal (the same services as the API and the UI)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from kizuna.cli_support import CLI, console
from kizuna.db import transaction
from kizuna.errors import KizunaError

deals_app = typer.Typer(help="List deals and move them between stages.", no_args_is_help=True)


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


@deals_app.command("list")
def list_command(
    filters: Annotated[list[str] | None, typer.Argument(help="Filters as field=value or field__op=value.")] = None,
    sort: Annotated[str, typer.Option(help="Field to sort by; '-' for descending.")] = "expected_close_date",
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Deals by the same filters as the API (owner_id=3, stage_id=2, amount__gte=100000 ...)."""
    from kizuna.listing import list_page
    from kizuna.sales.filters import DEAL_FILTERS, scoped
    from kizuna.sales.models import Deal
    from kizuna.sales.schemas import DealRead

    params = {}
    for item in filters or []:
        name, sep, value = item.partition("=")
        if not sep:
            console.print(f"[red]error:[/red] filter '{item}' is not field=value")
            raise typer.Exit(code=2)
        params[name] = value
    try:
        with transaction(_engine()) as session:
            query, params = scoped(session, CLI, select(Deal), params)
            rows, _ = list_page(session, DEAL_FILTERS, query, params, sort=sort, cursor=None, limit=limit)
            deals = [DealRead.model_validate(r) for r in rows]
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    if as_json:
        for deal in deals:
            print(deal.model_dump_json())
        return
    table = Table("id", "name", "stage", "amount", "close", "owner")
    for d in deals:
        table.add_row(
            str(d.id),
            d.name,
            str(d.stage_id),
            f"{d.currency} {d.amount:,}",
            str(d.expected_close_date or ""),
            str(d.owner_id or ""),
        )
    console.print(table)


@deals_app.command("move")
def move_command(
    deal_id: Annotated[int, typer.Argument(help="The deal's id.")],
    stage_id: Annotated[int, typer.Argument(help="A stage of the deal's pipeline.")],
    lost_reason: Annotated[str | None, typer.Option(help="Why it was lost (required for a lost stage).")] = None,
) -> None:
    """Move a deal to another stage of its pipeline (recorded in its history, audited, announced)."""
    from kizuna.sales import deals

    try:
        with transaction(_engine()) as session:
            deal = deals.move_deal(session, actor=CLI, deal_id=deal_id, stage_id=stage_id, lost_reason=lost_reason)
            shown = {"id": deal.id, "stage_id": deal.stage_id, "version": deal.version}
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    print(json.dumps(shown))


@deals_app.command("forecast")
def forecast_command(
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")] = None,
    pipeline: Annotated[int | None, typer.Option("--pipeline", help="Only this pipeline's id.")] = None,
    owner: Annotated[int | None, typer.Option("--owner", help="Only this owner's user id.")] = None,
    currency: Annotated[str | None, typer.Option("--currency", help="Only this currency (e.g. JPY).")] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
) -> None:
    """The weighted pipeline by month, owner and stage, and win rate and sales cycle per stage and owner."""
    from kizuna.sales import forecast

    if output not in ("table", "json", "csv"):
        console.print(f"[red]error:[/red] --format '{output}' is not one of table, json, csv")
        raise typer.Exit(code=2)
    try:
        spec = forecast.spec_of(start=start, end=end, pipeline_id=pipeline, owner_id=owner, currency=currency)
        with transaction(_engine()) as session:
            result = forecast.forecast(session, actor=CLI, spec=spec)
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    if output == "json":
        print(result.model_dump_json(indent=2))
        return
    rows = forecast.flat_rows(result)
    if output == "csv":
        import csv
        import sys

        from kizuna.exports.service import neutralize

        writer = csv.DictWriter(sys.stdout, fieldnames=list(forecast.FLAT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        # Stage and owner names are users' text: neutralised like every export (a leading '=' runs nowhere).
        writer.writerows({k: neutralize(v) for k, v in row.items()} for row in rows)
        return
    for section, title in forecast.SECTIONS.items():
        table = Table(*forecast.FLAT_COLUMNS[1:], title=title)
        for row in rows:
            if row["section"] == section:
                table.add_row(*("" if row[c] is None else str(row[c]) for c in forecast.FLAT_COLUMNS[1:]))
        console.print(table)
