"""``kizuna sources ...``: tracking sources (websites, apps) and their write keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

sources_app = typer.Typer(help="Tracking sources and their write keys (the Segment-compatible /v1 API).")


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


@sources_app.command("create")
def create(name: Annotated[str, typer.Option("--name", help="What sends the events (a site, an app).")]) -> None:
    """Create a source and print its write key (shown only now; Kizuna keeps a hash)."""
    from kizuna.ingest import sources

    try:
        with _session() as session:
            source, key = sources.create_source(session, actor=CLI, name=name)
            session.commit()
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"source {source.id} '{source.name}' created; write key (shown once):", markup=False)
    print(key)


@sources_app.command("list")
def list_() -> None:
    """Every source: key prefix, status, last event and counts."""
    from kizuna.ingest import sources

    with _session() as session:
        rows = sources.list_sources(session, actor=CLI)
    table = Table("id", "name", "key", "status", "last seen", "events", "rejected")
    for s in rows:
        table.add_row(
            str(s.id),
            s.name,
            s.key_prefix + "…",
            "revoked" if s.revoked_at else "live",
            s.last_seen_at.isoformat(timespec="seconds") if s.last_seen_at else "-",
            str(s.event_count),
            str(s.rejected_count),
        )
    console.print(table)


@sources_app.command("revoke")
def revoke(source: Annotated[str, typer.Argument(help="The source's id or name.")]) -> None:
    """Stop accepting a source's write key (its events stay)."""
    from kizuna.ingest import sources

    try:
        with _session() as session:
            row = sources.revoke_source(session, actor=CLI, ref=source)
            session.commit()
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"source {row.id} '{row.name}' revoked", markup=False)


@sources_app.command("purge-anonymous")
def purge_anonymous(
    days: Annotated[int | None, typer.Option("--days", min=1, help="Override KIZUNA_ANONYMOUS_RETENTION_DAYS.")] = None,
) -> None:
    """Remove anonymous visitor profiles with no event for the retention period."""
    from kizuna.ingest import retention

    total = 0
    with _session() as session:
        while True:
            removed = retention.purge_anonymous(session, actor=CLI, days=days)
            session.commit()
            total += removed
            if removed == 0:
                break
    console.print(f"{total} anonymous profiles removed")
