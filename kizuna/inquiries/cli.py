"""``kizuna inquiries email-in|imap-poll|list``: the desk from a terminal and from a mail server.

``email-in`` is what a mail server's pipe runs (Postfix ``| kizuna inquiries email-in``): the raw mail on stdin
becomes a ticket or a message in its thread; the exit code tells the server whether to retry (75, EX_TEMPFAIL)
or bounce (65, EX_DATAERR).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.db import transaction
from kizuna.errors import KizunaError

inquiries_app = typer.Typer(help="Inquiry desk: mail in, IMAP poll, queues.", no_args_is_help=True)
EX_DATAERR = 65
EX_TEMPFAIL = 75


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


@inquiries_app.command("email-in")
def email_in_command(
    file: Annotated[Path | None, typer.Option(help="Read the raw mail from this file instead of stdin.")] = None,
) -> None:
    """Thread one raw RFC 822 mail (stdin) into the desk; prints the ticket it went to."""
    from kizuna.inquiries import email_in

    raw = file.read_bytes() if file else sys.stdin.buffer.read()
    try:
        with transaction(_engine()) as session:
            result = email_in.receive(session, actor=CLI, raw=raw)
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=EX_DATAERR) from exc
    except Exception as exc:  # a database outage: the mail server keeps the mail and retries
        console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(code=EX_TEMPFAIL) from exc
    if result.ignored:
        print(f"ignored: {result.automatic} matching no inquiry (see the audit log)")
        return
    what = "duplicate of" if result.duplicate else ("new inquiry" if result.created else "added to")
    kind = f", {result.automatic}" if result.automatic else ""
    print(f"{what} KZ-{result.inquiry_id} (message {result.message_id}{kind})")


@inquiries_app.command("imap-poll")
def imap_poll_command() -> None:
    """Read the unread mail of the configured IMAP folder once (the worker does this on its schedule)."""
    from kizuna.config import get_settings
    from kizuna.inquiries import imap

    if not get_settings().inquiry_imap_host:
        console.print("[red]error:[/red] KIZUNA_INQUIRY_IMAP_HOST is not set")
        raise typer.Exit(code=2)
    result = imap.poll(_engine())
    print(
        f"read {result.read}, threaded {result.threaded}, automatic {result.automatic} "
        f"(ignored {result.ignored}), refused {len(result.refused)}"
    )
    for line in result.refused:
        print(f"  refused {line}")


@inquiries_app.command("list")
def list_command(
    tab: Annotated[str, typer.Option(help="all, unclaimed (mine and team need a signed-in user).")] = "all",
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """Open inquiries in queue order: overdue first, then unclaimed, then by the nearest deadline."""
    from kizuna.inquiries import queues, service

    try:
        with transaction(_engine()) as session:
            rows = [
                (
                    service.reference(i.id),
                    i.subject,
                    i.status,
                    i.priority,
                    str(i.claimed_by or ""),
                    service.is_overdue(i),
                )
                for i in queues.queue(session, actor=CLI, tab=tab, limit=limit)
            ]
    except KizunaError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(code=2) from exc
    table = Table("ref", "subject", "status", "priority", "claimed by", "overdue")
    for ref, subject, status, priority, holder, late in rows:
        table.add_row(ref, subject, status, priority, holder, "yes" if late else "")
    console.print(table)
