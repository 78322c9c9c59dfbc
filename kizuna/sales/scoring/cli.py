"""``kizuna scoring train|score|call-first|rules``: the same services as the API and the UI."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from kizuna.cli_support import CLI, console
from kizuna.db import transaction
from kizuna.errors import KizunaError

scoring_app = typer.Typer(help="Lead and deal scoring: train, rescore, whom to call first.", no_args_is_help=True)


def _engine():  # noqa: ANN202
    from kizuna.db import ready_engine

    return ready_engine()


def _fail(exc: KizunaError) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(code=2)


def print_model(model: dict[str, Any]) -> None:
    """One model's quality: cross-validated AUC and its calibration table."""
    console.print(
        f"[bold]{model['subject']}[/bold] model v{model['version']}: cross-validated AUC {model['cv_auc']:.3f} "
        f"on {model['rows']:,} closed ({model['positives']:,} won)"
    )
    table = Table("predicted", "mean predicted", "observed win rate", "count", title="calibration (5-fold CV)")
    for row in model["calibration"]:
        table.add_row(row["bucket"], f"{row['predicted']:.1%}", f"{row['observed']:.1%}", f"{row['count']:,}")
    console.print(table)


@scoring_app.command("train")
def train_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fit the model on the won/lost history, print its AUC and calibration table, rescore open deals and leads."""
    from kizuna.sales.scoring import service
    from kizuna.sales.scoring.schemas import TrainResult

    try:
        with transaction(_engine()) as session:
            result = TrainResult.model_validate(service.train(session, actor=CLI))
    except KizunaError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(result.model_dump_json())
        return
    for model in result.models:
        print_model(model.model_dump())
    for subject, why in result.skipped.items():
        console.print(f"[yellow]{subject}s not trained:[/yellow] {why}")
    console.print(f"scored: {json.dumps(result.scored)}")


@scoring_app.command("score")
def score_command() -> None:
    """Rescore the open deals and leads now (by the newest model, else by the rules)."""
    from kizuna.sales.scoring import service

    try:
        with transaction(_engine()) as session:
            counts = service.rescore(session, actor=CLI)
    except KizunaError as exc:
        raise _fail(exc) from exc
    print(json.dumps(counts))


@scoring_app.command("call-first")
def call_first_command(
    owner_id: Annotated[int | None, typer.Option(help="Only this owner's deals and leads.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Whom to call first: open deals and leads by score × value, with the top factors."""
    from kizuna.sales.scoring import service
    from kizuna.sales.scoring.schemas import CallFirstItem

    with transaction(_engine()) as session:
        items = [CallFirstItem.model_validate(i) for i in service.call_first(session, actor=CLI, owner_id=owner_id,
                                                                            limit=limit)]  # fmt: skip
    if as_json:
        for item in items:
            print(item.model_dump_json())
        return
    table = Table("kind", "id", "name", "score", "value", "why")
    for i in items:
        why = ", ".join(
            f"{f.feature} {f.contribution:+.2f}" if f.contribution is not None else f.rule or f.feature
            for f in i.factors
        )
        table.add_row(
            i.subject, str(i.deal_id or i.customer_id), i.name, str(i.score), f"{i.currency} {i.value:,}", why
        )
    console.print(table)


@scoring_app.command("rules")
def rules_command() -> None:
    """The fallback rule score's rules (edit them in the UI or with PUT /api/v1/scoring/rules)."""
    from kizuna.sales.scoring import rules

    with transaction(_engine()) as session:
        for rule in rules.list_rules(session):
            print(f"{rule.subject}\t{rules.describe(rule)}")
