"""``kizuna campaigns ...``: list, create, send (now or at a time), pause, resume, cancel, stats."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

campaigns_app = typer.Typer(
    help="Campaigns: one-off or scheduled sends to a segment, with A/B tests.", no_args_is_help=True
)


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


def _find(session, name_or_id: str) -> int:  # noqa: ANN001
    from sqlalchemy import select

    from kizuna.campaigns.models import Campaign
    from kizuna.errors import NotFound

    query = select(Campaign.id).where(Campaign.name == name_or_id)
    if name_or_id.isdigit():
        query = select(Campaign.id).where(Campaign.id == int(name_or_id))
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"no campaign named or numbered {name_or_id!r}")
    return found


@campaigns_app.command("list")
def list_(fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table") -> None:
    """Every campaign with its status and audience."""
    from kizuna.campaigns import service
    from kizuna.campaigns.schemas import CampaignRead

    with _session() as session:
        rows = service.list_campaigns(session, actor=CLI)
        if fmt == "json":
            print(
                json.dumps([CampaignRead.model_validate(c).model_dump(mode="json") for c in rows], ensure_ascii=False)
            )
            return
        table = Table("id", "name", "status", "audience", "scheduled", "winner")
        for c in rows:
            scheduled = c.scheduled_at.isoformat(timespec="minutes") if c.scheduled_at else ""
            table.add_row(str(c.id), c.name, c.status, f"{c.audience:,}", scheduled, c.winner or "")
        console.print(table)


@campaigns_app.command("create")
def create(
    name: str,
    segment: Annotated[int, typer.Option("--segment", help="Segment id of the audience.")],
    template: Annotated[int, typer.Option("--template", help="Template id of the message.")],
    channel: Annotated[str, typer.Option("--channel", help="email or line")] = "email",
    subject: Annotated[str | None, typer.Option("--subject", help="Overrides the template's subject.")] = None,
    ab_test: Annotated[
        str | None,
        typer.Option(
            "--ab-test", help='JSON, e.g. {"variants": [{"name": "A", "subject": ".."}, ...], "sample_percent": 20}'
        ),
    ] = None,
) -> None:
    """Create a draft campaign (nothing is sent until `kizuna campaigns send`)."""
    from kizuna.campaigns import service
    from kizuna.campaigns.schemas import ABTest, CampaignCreate

    try:
        test = ABTest.model_validate_json(ab_test) if ab_test else None
        with _session() as session:
            data = CampaignCreate(
                name=name, segment_id=segment, template_id=template, channel=channel, subject=subject, ab_test=test
            )
            campaign = service.create_campaign(session, actor=CLI, data=data)
            session.commit()
            console.print(f"campaign {campaign.id} '{campaign.name}' created (draft)")
    except KizunaError as exc:
        raise _fail(exc) from exc
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc


@campaigns_app.command("send")
def send(
    campaign: Annotated[str, typer.Argument(help="Campaign name or id.")],
    at: Annotated[
        str | None, typer.Option("--at", help="When, ISO 8601 with a time zone (2026-12-01T09:00+09:00); empty: now.")
    ] = None,
) -> None:
    """Schedule a campaign; the worker (`kizuna worker`, or the one `kizuna serve` runs) sends it."""
    from kizuna.campaigns import service

    try:
        when = dt.datetime.fromisoformat(at) if at else None
    except ValueError as exc:
        console.print(f"[red]error:[/red] --at {at!r} is not an ISO 8601 time")
        raise typer.Exit(code=2) from exc
    try:
        with _session() as session:
            row = service.schedule(session, _find(session, campaign), actor=CLI, at=when)
            session.commit()
            console.print(f"campaign {row.id} '{row.name}' scheduled for {row.scheduled_at.isoformat()}")
    except KizunaError as exc:
        raise _fail(exc) from exc


def _change(action: str, campaign: str) -> None:
    from kizuna.campaigns import service

    try:
        with _session() as session:
            row = getattr(service, action)(session, _find(session, campaign), actor=CLI)
            session.commit()
            console.print(f"campaign {row.id} '{row.name}': {row.status}")
    except KizunaError as exc:
        raise _fail(exc) from exc


@campaigns_app.command("pause")
def pause(campaign: Annotated[str, typer.Argument(help="Campaign name or id.")]) -> None:
    """Hold whatever has not gone out yet."""
    _change("pause", campaign)


@campaigns_app.command("resume")
def resume(campaign: Annotated[str, typer.Argument(help="Campaign name or id.")]) -> None:
    _change("resume", campaign)


@campaigns_app.command("cancel")
def cancel(campaign: Annotated[str, typer.Argument(help="Campaign name or id.")]) -> None:
    """Stop for good; what is not sent yet is recorded as skipped (cancelled)."""
    _change("cancel", campaign)


@campaigns_app.command("stats")
def stats(
    campaign: Annotated[str, typer.Argument(help="Campaign name or id.")],
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Sent, opened, clicked, converted ... per variant, with the A/B test's result."""
    from kizuna.campaigns import service

    try:
        with _session() as session:
            result = service.stats(session, _find(session, campaign), actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    if fmt == "json":
        print(result.model_dump_json())
        return
    table = Table(
        "variant", "messages", "sent", "skipped", "failed", "opened", "clicked", "unsub", "complaints", "converted"
    )
    for v in [*result.variants, result.total]:
        table.add_row(
            v.variant,
            *(
                f"{getattr(v, k):,}"
                for k in (
                    "messages",
                    "sent",
                    "skipped",
                    "failed",
                    "opened",
                    "clicked",
                    "unsubscribed",
                    "complained",
                    "converted",
                )
            ),
        )
    console.print(table)
    if result.test:
        p = result.test.get("p_value")
        console.print(f"A/B ({result.test.get('metric')}): p = {p:.4f}" if p is not None else "A/B: too few sends yet")
