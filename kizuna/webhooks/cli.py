"""``kizuna webhooks list|deliveries|retry``: endpoints with their subscriptions, the delivery log, retries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.db import transaction
from kizuna.errors import KizunaError

webhooks_app = typer.Typer(help="Outgoing webhooks on domain events.", no_args_is_help=True)


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


@webhooks_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Endpoints and the events each is subscribed to."""
    from kizuna.messaging import webhook_admin
    from kizuna.webhooks import service

    with transaction(_engine()) as session:
        endpoints = webhook_admin.list_endpoints(session, actor=CLI)
        subscriptions = service.list_subscriptions(session, actor=CLI)
        rows = [
            {
                "endpoint_id": e.id,
                "endpoint": e.name,
                "url": e.url,
                "active": e.active,
                "subscriptions": [
                    {"id": s.id, "events": s.events, "include_backfill": s.include_backfill, "active": s.active}
                    for s in subscriptions
                    if s.endpoint_id == e.id
                ],
            }
            for e in endpoints
        ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        console.print("no webhook endpoints")
        return
    table = Table("endpoint", "url", "state", "subscription", "events", "backfill")
    for row in rows:
        state = "active" if row["active"] else "paused"
        subs = row["subscriptions"] or [None]
        for sub in subs:
            if sub is None:
                table.add_row(row["endpoint"], row["url"], state, "", "(none)", "")
            else:
                sub_state = "" if sub["active"] else " (paused)"
                table.add_row(
                    row["endpoint"], row["url"], state, f"{sub['id']}{sub_state}", ", ".join(sub["events"]),
                    "yes" if sub["include_backfill"] else "no",
                )  # fmt: skip
    console.print(table)


@webhooks_app.command("deliveries")
def deliveries_command(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's (its name).")] = None,
    status: Annotated[str | None, typer.Option(help="pending, retrying, delivered, dead or skipped.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The delivery log: status, attempts, the receiver's answer, latency and the last error."""
    from sqlalchemy import select

    from kizuna.messaging.webhook_models import WebhookEndpoint
    from kizuna.webhooks import service

    try:
        with transaction(_engine()) as session:
            endpoint_id = None
            if endpoint is not None:
                endpoint_id = session.scalar(select(WebhookEndpoint.id).where(WebhookEndpoint.name == endpoint))
                if endpoint_id is None:
                    raise typer.BadParameter(f"no webhook endpoint named {endpoint!r}", param_hint="--endpoint")
            views = service.list_deliveries(session, actor=CLI, endpoint_id=endpoint_id, status=status, limit=limit)
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    if as_json:
        fields = ("id", "endpoint", "event", "event_id", "customer_id", "status", "attempts", "response_status",
                  "latency_ms", "last_error", "idempotency_key")  # fmt: skip
        print(json.dumps([{f: getattr(v, f) for f in fields} for v in views], ensure_ascii=False))
        return
    table = Table("delivery", "endpoint", "event", "status", "attempts", "answer", "ms", "last error")
    for v in views:
        table.add_row(
            str(v.id), v.endpoint or "", v.event, v.status, str(v.attempts),
            str(v.response_status or ""), str(v.latency_ms if v.latency_ms is not None else ""), v.last_error or "",
        )  # fmt: skip
    console.print(table if views else "no deliveries")


@webhooks_app.command("retry")
def retry_command(
    delivery: Annotated[list[int], typer.Option("--delivery", help="A dead delivery's id (repeatable).")],
) -> None:
    """Send dead deliveries again (same body and Idempotency-Key), with a fresh set of attempts."""
    from kizuna.webhooks import service

    try:
        with transaction(_engine()) as session:
            for delivery_id in delivery:
                service.retry_delivery(session, actor=CLI, delivery_id=delivery_id)
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    console.print(f"{len(delivery):,} dead deliveries will be retried")
