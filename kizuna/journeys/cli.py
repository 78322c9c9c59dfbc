"""``kizuna journeys ...``: apply a YAML (or JSON) file, list the journeys, show a journey's numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

journeys_app = typer.Typer(help="Journeys: scenarios written as YAML, run by the worker.", no_args_is_help=True)


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


def _read(path: Path) -> dict:
    from kizuna.journeys.definition import load_yaml

    text = path.read_text(encoding="utf-8-sig")
    return json.loads(text) if path.suffix.lower() == ".json" else load_yaml(text)


def _print_problems(exc: KizunaError) -> None:
    for problem in getattr(exc, "problems", []):
        console.print(f"  {problem.path}: {problem.message}", markup=False)


@journeys_app.command("apply")
def apply(file: Annotated[Path, typer.Argument(help="A journey definition (.yaml, .yml or .json).")]) -> None:
    """Create the journey named in the file, or publish the file as its new version, and make it live."""
    from kizuna.journeys import service

    try:
        with _session() as session:
            result = service.apply(session, actor=CLI, definition=_read(file))
            session.commit()
    except KizunaError as exc:
        _print_problems(exc)
        raise _fail(exc) from exc
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot read {file}: {exc.strerror}")
        raise typer.Exit(code=2) from exc
    what = "created" if result.created else ("published" if result.new_version else "unchanged")
    console.print(
        f"journey {result.journey.id} '{result.journey.name}' {what}: version {result.version.version} is live",
        markup=False,
    )


@journeys_app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="A journey definition (.yaml, .yml or .json).")]) -> None:
    """Check a file without saving it: every problem, each with its step."""
    from kizuna.journeys import service

    try:
        with _session() as session:
            problems = service.validate(session, _read(file), actor=CLI)
    except KizunaError as exc:
        _print_problems(exc)
        raise _fail(exc) from exc
    for p in problems:
        console.print(f"{p['path']}: {p['message']}", markup=False)
    if problems:
        raise typer.Exit(code=2)
    console.print("valid")


@journeys_app.command("list")
def list_(fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """Every journey with its status, live version and how many customers are in it."""
    from kizuna.journeys import service, stats

    with _session() as session:
        counts = stats.summaries(session, actor=CLI)
        rows = []
        for j in service.list_journeys(session, actor=CLI):
            live = service.live_version(session, j)
            c = counts.get(j.id, {})
            rows.append(
                {
                    "id": j.id,
                    "name": j.name,
                    "status": j.status,
                    "version": live.version if live else None,
                    "trigger": j.trigger_type or (j.draft.get("trigger") or {}).get("type"),
                    "enrolled": sum(c.values()),
                    "open": c.get("active", 0) + c.get("waiting", 0),
                    "converted": c.get("converted", 0),
                }
            )
    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("id", "name", "status", "version", "trigger", "enrolled", "open", "converted")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["status"],
            str(r["version"] or ""),
            r["trigger"] or "",
            f"{r['enrolled']:,}",
            f"{r['open']:,}",
            f"{r['converted']:,}",
        )
    console.print(table)


@journeys_app.command("stats")
def stats_(
    name: Annotated[str, typer.Argument(help="The journey's name.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """A journey's numbers: per step, per message outcome, and the A/B test."""
    from kizuna.journeys import service
    from kizuna.journeys import stats as journey_stats
    from kizuna.journeys.api import stats_read

    try:
        with _session() as session:
            journey = service.get_by_name(session, name, actor=CLI)
            found = journey_stats.journey_stats(session, journey.id, actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        typer.echo(stats_read(found).model_dump_json(indent=2))
        return
    console.print(f"{found.name} (version {found.version or '-'}): {found.enrolled:,} enrolled", markup=False)
    table = Table("step", "type", "entered", "waiting", "completed", "dropped", "converted", "messages")
    for s in found.steps:
        sent = ""
        if s.messages is not None:
            sent = ", ".join(f"{k} {v:,}" for k, v in s.messages.items() if v)
        table.add_row(
            s.step,
            s.type,
            f"{s.entered:,}",
            f"{s.waiting + s.due:,}",
            f"{s.completed:,}",
            f"{s.dropped:,}",
            f"{s.converted:,}",
            sent,
        )
    console.print(table)
    if found.variants:
        ab = Table("variant", "customers", found.metric, "rate", "p (vs first)")
        for v in found.variants:
            ab.add_row(
                v.name,
                f"{v.customers:,}",
                f"{v.successes:,}",
                f"{v.rate:.1%}",
                "" if v.p_value is None else f"{v.p_value:.3f}",
            )
        console.print(ab)
    if found.uplift is not None:
        u = found.uplift
        p = "" if u.p_value is None else f", p = {u.p_value:.3f}"
        console.print(
            f"uplift over holdout: {u.absolute:+.1%} ({u.treated.rate:.1%} vs {u.holdout.rate:.1%}{p})", markup=False
        )
