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
