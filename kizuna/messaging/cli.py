"""``kizuna messages ...``: send a test mail (checks SMTP, sender identity and DKIM) and see the queue's state."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

messages_app = typer.Typer(help="Messages: test mails and the state of the send queue.", no_args_is_help=True)


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


@messages_app.command("send-test")
def send_test(
    to: Annotated[str, typer.Option("--to", help="Where the test mail goes.")],
    template: Annotated[str | None, typer.Option(help="A template's name (default: a short test text).")] = None,
    customer: Annotated[int | None, typer.Option(help="Render for this customer (default: the newest).")] = None,
) -> None:
    """Send one mail now, outside the queue, through the configured SMTP server."""
    from kizuna.messaging import email, service

    with _session() as session:
        try:
            template_id = None
            if template is not None:
                found = service.template_by_name(session, template)
                if found is None:
                    raise KizunaError(f"no template named {template!r}", field="template")
                template_id = found.id
            where = email.send_test(session, actor=CLI, to=to, template_id=template_id, customer_id=customer)
        except KizunaError as exc:
            raise _fail(exc) from exc
    console.print(f"sent to {where}")


@messages_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Messages per channel, status and reason."""
    from kizuna.messaging import service

    with _session() as session:
        rows = service.status_counts(session, actor=CLI)
    if as_json:
        print(json.dumps([{"channel": c, "status": s, "reason": r, "count": n} for c, r, s, n in rows]))
        return
    table = Table("channel", "status", "reason", "messages")
    for channel, reason, state, count in rows:
        table.add_row(channel, state, reason or "", f"{count:,}")
    console.print(table if rows else "no messages")
