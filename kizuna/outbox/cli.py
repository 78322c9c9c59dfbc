"""``kizuna outbox status|dead|retry``: what the workers have left to do, and dead deliveries retried by hand."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.db import transaction
from kizuna.errors import KizunaError

outbox_app = typer.Typer(help="Inspect and retry outbox deliveries.", no_args_is_help=True)


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


@outbox_app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Deliveries per subscriber: due, scheduled, running, retrying, dead, done."""
    from kizuna.outbox import service

    with transaction(_engine()) as session:
        rows = service.status(session, actor=CLI)
    if as_json:
        print(json.dumps([{**r.__dict__, "oldest_due": r.oldest_due and r.oldest_due.isoformat()} for r in rows]))
        return
    if not rows:
        console.print("no subscribers are declared and no deliveries exist")
        return
    table = Table("subscriber", "due", "scheduled", "running", "retrying", "dead", "done", "oldest due")
    for r in rows:
        name = r.subscriber if r.declared else f"{r.subscriber} [red](not declared)[/red]"
        oldest = r.oldest_due.isoformat(timespec="seconds") if r.oldest_due else ""
        table.add_row(name, *(f"{n:,}" for n in (r.due, r.scheduled, r.running, r.retrying, r.dead, r.done)), oldest)
    console.print(table)


@outbox_app.command("dead")
def dead_command(
    subscriber: Annotated[str | None, typer.Option(help="Only this subscriber's.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List dead deliveries with their last error."""
    from kizuna.outbox import service

    with transaction(_engine()) as session:
        rows = service.list_deliveries(session, actor=CLI, status="dead", subscriber=subscriber, limit=limit)
        if as_json:
            fields = ("id", "subscriber", "target", "message_id", "attempts", "last_error")
            print(json.dumps([{**{f: getattr(d, f) for f in fields}, "topic": m.topic} for d, m in rows]))
            return
        table = Table("delivery", "subscriber", "target", "topic", "message", "attempts", "last error")
        for d, m in rows:
            table.add_row(str(d.id), d.subscriber, d.target, m.topic, str(m.id), str(d.attempts), d.last_error or "")
    console.print(table if rows else "no dead deliveries")


@outbox_app.command("retry")
def retry_command(
    delivery: Annotated[list[int] | None, typer.Option("--delivery", help="A dead delivery's id (repeatable).")] = None,
    subscriber: Annotated[str | None, typer.Option(help="Every dead delivery of this subscriber.")] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead delivery.")] = False,
) -> None:
    """Give dead deliveries a fresh set of attempts, due now."""
    from kizuna.outbox import service

    if not (delivery or subscriber or all_dead):
        console.print("[red]error:[/red] name --delivery ID, --subscriber NAME or --all-dead")
        raise typer.Exit(code=2)
    try:
        with transaction(_engine()) as session:
            count = service.retry(session, actor=CLI, delivery_ids=delivery or None, subscriber=subscriber)
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    console.print(f"{count:,} dead deliveries will be retried")
