"""``kizuna duplicates scan|list``: find likely duplicate customers now, and list the pairs waiting for review."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.errors import KizunaError

duplicates_app = typer.Typer(help="Find likely duplicate customers and list the pairs to review.", no_args_is_help=True)


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


@duplicates_app.command("scan")
def scan_command(
    max_block: Annotated[int, typer.Option(help="Blocks with more customers than this are counted, not paired.")] = 20,
    queue: Annotated[
        bool, typer.Option("--queue", help="Ask the worker to run it instead of running it here.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scan as JSON.")] = False,
) -> None:
    """Look for likely duplicates in all active customers and propose the new pairs for review."""
    from kizuna.customers import duplicate_scan
    from kizuna.db import take_write_lock, transaction

    engine = _engine()
    try:
        if queue:
            with transaction(engine) as session:
                scan = duplicate_scan.request_scan(session, actor=CLI)
                console.print(f"scan {scan.id} queued for the worker (kizuna worker)")
            return
        rules = duplicate_scan.RULE_NAMES
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        ) as bar:
            task = bar.add_task(f"rule {rules[0]}", total=len(rules))

            def step(done: str) -> None:
                following = rules[rules.index(done) + 1] if done != rules[-1] else "storing pairs"
                bar.update(task, advance=1, description=f"rule {following}")

            # Read, then store under the write lock in a short transaction of its own (as the worker does), so
            # that on SQLite the web's writes are not held up for the length of the scan.
            with transaction(engine) as session:
                found = duplicate_scan.find_pairs(session, max_block=max_block, progress=step)
            with transaction(engine) as session:
                take_write_lock(session.connection())
                scan = duplicate_scan.record_scan(session, actor=CLI, found=found)
                summary = {
                    "scan_id": scan.id,
                    "candidates": scan.candidates,
                    "proposed": scan.proposed,
                    "seconds": round((scan.finished_at - scan.started_at).total_seconds(), 2),
                    **scan.details,
                }
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("rule", "blocks", "pairs", "blocks too large", "seconds")
    for name, tally in summary["rules"].items():
        table.add_row(
            name, f"{tally['blocks']:,}", f"{tally['pairs']:,}", f"{tally['oversized']:,}", str(tally["seconds"])
        )
    console.print(table)
    console.print(
        f"scan {summary['scan_id']}: {summary['candidates']:,} candidate pairs, "
        f"{summary['proposed']:,} new for review, in {summary['seconds']} s"
    )


@duplicates_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(help="How many, oldest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Open pairs waiting for review, with both customers' names."""
    from kizuna.customers import duplicate_review
    from kizuna.db import transaction

    with transaction(_engine()) as session:
        page = duplicate_review.open_pairs(session, actor=CLI, per_page=limit)
        rows = [
            {
                "pair_id": r.pair.id,
                "reason": r.pair.reason,
                "customer_id": r.first.id,
                "customer": r.first.full_name,
                "other_customer_id": r.second.id,
                "other_customer": r.second.full_name,
            }
            for r in page.rows
        ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("pair", "reason", "customer", "other customer")
    for r in rows:
        table.add_row(
            str(r["pair_id"]),
            r["reason"],
            f"#{r['customer_id']} {r['customer']}",
            f"#{r['other_customer_id']} {r['other_customer']}",
        )
    console.print(table)
    console.print(f"{page.total:,} open pairs")
