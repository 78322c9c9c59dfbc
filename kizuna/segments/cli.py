"""``kizuna segments ...``: create, list, show, refresh, members, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

segments_app = typer.Typer(help="Segments: dynamic (a rule) and static (a list).", no_args_is_help=True)


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


@segments_app.command("create")
def create(
    name: str,
    rule: Annotated[Path | None, typer.Option("--rule", help="A JSON file holding the rule.")] = None,
    rule_json: Annotated[str | None, typer.Option("--rule-json", help="The rule as JSON text.")] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="A static list: CSV of customer ids or e-mails.")
    ] = None,
    description: str = "",
) -> None:
    """Create a dynamic segment from a rule (refreshed at once), or a static list from a CSV."""
    from kizuna.segments import service
    from kizuna.segments.schedule import ensure_scheduled
    from kizuna.segments.schemas import SegmentCreate

    given = [x for x in (rule, rule_json, csv_file) if x is not None]
    if len(given) != 1:
        console.print("[red]error:[/red] give one of --rule FILE.json, --rule-json TEXT or --csv FILE")
        raise typer.Exit(code=2)
    try:
        with _session() as session:
            if csv_file is not None:
                data = SegmentCreate(name=name, description=description, kind="static")
                segment = service.create_segment(session, actor=CLI, data=data)
                found = service.resolve_csv(session, csv_file.read_text(encoding="utf-8-sig"))
                result = service.build_static(
                    session,
                    segment.id,
                    actor=CLI,
                    customer_ids=found.ids,
                    source={"from": "csv", "file": csv_file.name},
                )
                if found.unmatched:
                    console.print(f"{len(found.unmatched)} rows matched no customer: {', '.join(found.unmatched[:10])}")
            else:
                text = rule.read_text(encoding="utf-8") if rule is not None else rule_json or ""
                from kizuna.segments.rules import parse_rule

                parsed = parse_rule(text)
                data = SegmentCreate(name=name, description=description, kind="dynamic", rule=json.loads(text))
                del parsed
                segment = service.create_segment(session, actor=CLI, data=data)
                result = service.refresh(session, segment.id, actor=CLI)
                ensure_scheduled(session)
            session.commit()
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"segment {segment.id} '{name}': {result.member_count:,} members")


@segments_app.command("list")
def list_(fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """Every segment with its member count and last refresh."""
    from kizuna.segments import service

    with _session() as session:
        rows = service.list_segments(session, actor=CLI)
    if fmt == "json":
        out = [
            {
                "id": s.id,
                "name": s.name,
                "kind": s.kind,
                "member_count": s.member_count,
                "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
            }
            for s in rows
        ]
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    table = Table("id", "name", "kind", "members", "refreshed")
    for s in rows:
        table.add_row(
            str(s.id), s.name, s.kind, f"{s.member_count:,}", s.refreshed_at.isoformat() if s.refreshed_at else ""
        )
    console.print(table)


@segments_app.command("show")
def show(segment_id: int) -> None:
    """A segment's rule (as JSON), counts and refresh times."""
    from kizuna.segments import service

    try:
        with _session() as session:
            s = service.get_segment(session, segment_id, actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    out = {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "description": s.description,
        "rule": s.rule,
        "source": s.source,
        "member_count": s.member_count,
        "refreshed_at": s.refreshed_at.isoformat() if s.refreshed_at else None,
        "full_refreshed_at": s.full_refreshed_at.isoformat() if s.full_refreshed_at else None,
    }
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@segments_app.command("refresh")
def refresh(
    segment_id: Annotated[int | None, typer.Argument(help="One segment; all dynamic segments when omitted.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-evaluate every customer.")] = False,
) -> None:
    """Refresh one segment (or all): incremental unless --full or a full refresh is due today."""
    from kizuna.db import new_session, ready_engine
    from kizuna.segments import service

    try:
        if segment_id is None:
            engine = ready_engine()
            results, errors = service.refresh_due(lambda: new_session(engine), actor=CLI)
            for message in errors:
                console.print(f"[red]error:[/red] {message}")
        else:
            with _session() as session:
                results = [service.refresh(session, segment_id, actor=CLI, full=full or None)]
                session.commit()
            errors = []
    except KizunaError as exc:
        raise _fail(exc) from exc
    for r in results:
        console.print(
            f"segment {r.segment_id} ({r.mode}): +{r.entered:,} -{r.exited:,} = {r.member_count:,} members "
            f"in {r.seconds:.2f} s" + (f", {r.evaluated:,} customers re-evaluated" if r.evaluated is not None else "")
        )
    if errors:
        raise typer.Exit(code=1)


@segments_app.command("members")
def members_(
    segment_id: int,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """The current members (id order)."""
    from kizuna.segments import service

    try:
        with _session() as session:
            rows, _ = service.members(session, segment_id, actor=CLI, limit=limit)
    except KizunaError as exc:
        raise _fail(exc) from exc
    items = [{"id": c.id, "full_name": c.full_name, "email": c.email} for c in rows]
    if fmt == "json":
        typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        typer.echo("id,full_name,email")
        for item in items:
            typer.echo(f"{item['id']},{item['full_name']},{item['email'] or ''}")
    else:
        table = Table("id", "name", "email")
        for item in items:
            table.add_row(str(item["id"]), item["full_name"], item["email"] or "")
        console.print(table)


@segments_app.command("delete")
def delete(segment_id: int) -> None:
    """Delete a segment and its membership history."""
    from kizuna.segments import service

    try:
        with _session() as session:
            service.delete_segment(session, segment_id, actor=CLI)
            session.commit()
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"segment {segment_id} deleted")
