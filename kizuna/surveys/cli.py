"""``kizuna surveys ...``: list surveys, make a customer's answer links, print NPS."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

surveys_app = typer.Typer(help="NPS surveys: answer links and NPS reports.", no_args_is_help=True)


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


@surveys_app.command("list")
def list_() -> None:
    """Every survey with its answers and NPS."""
    from kizuna.surveys import report, service

    with _session() as session:
        table = Table("id", "name", "touchpoint", "active", "answers", "NPS")
        for s in service.list_surveys(session, actor=CLI):
            total = report.report(session, s.id, by="touchpoint").total
            shown = f"{total.nps:+.1f}" if total.nps is not None else "-"
            table.add_row(str(s.id), s.name, s.touchpoint, "yes" if s.active else "no", f"{total.responses:,}", shown)
        console.print(table)


@surveys_app.command("link")
def link(
    survey_id: Annotated[int, typer.Argument(help="The survey's id.")],
    customer_id: Annotated[int, typer.Argument(help="The customer to ask.")],
    send_key: Annotated[str | None, typer.Option(help="Your key for this send: the same key, the same answer.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """The 11 signed answer links (scores 0-10) of a customer, for another tool to send. Needs KIZUNA_PUBLIC_URL."""
    from kizuna.config import get_settings
    from kizuna.surveys import service

    base = get_settings().public_url
    if not base:
        raise _fail(KizunaError("KIZUNA_PUBLIC_URL is not set: links need the address customers reach Kizuna at"))
    try:
        with _session() as session:
            found = service.make_links(
                session, actor=CLI, survey_id=survey_id, customer_id=customer_id, send_key=send_key, base_url=base
            )
    except KizunaError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        print(json.dumps(found.model_dump(mode="json"), ensure_ascii=False))
        return
    for item in found.links:
        print(f"{item.score}\t{item.url}")


def _day(text: str | None, name: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise KizunaError(f"--{name} {text!r} is not a date (YYYY-MM-DD)", field=name) from exc


@surveys_app.command("nps")
def nps(
    survey_id: Annotated[int, typer.Argument(help="The survey's id.")],
    by: Annotated[str, typer.Option(help="month, segment, touchpoint or owner")] = "month",
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (inclusive).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive).")] = None,
) -> None:
    """NPS of a survey overall and by month, segment, touchpoint or owner."""
    from kizuna.surveys import report, service

    try:
        with _session() as session:
            service.get_survey(session, survey_id, actor=CLI)
            found = report.report(session, survey_id, by=by, start=_day(start, "from"), end=_day(end, "to"))
    except KizunaError as exc:
        raise _fail(exc) from exc
    table = Table(by, "answers", "promoters", "passives", "detractors", "NPS")
    for r in [*found.rows, found.total.model_copy(update={"label": "total"})]:
        shown = f"{r.nps:+.1f}" if r.nps is not None else "-"
        table.add_row(r.label or r.key or "-", f"{r.responses:,}", str(r.promoters), str(r.passives),
                      str(r.detractors), shown)  # fmt: skip
    console.print(table)
