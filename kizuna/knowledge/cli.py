"""``kizuna knowledge ...``: load FAQ articles from a JSON file, list them, measure the bot on a question set;
``kizuna chats sites ...``: the sites allowed to embed the chat widget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.errors import KizunaError

knowledge_app = typer.Typer(help="FAQ articles the website chat bot answers from.", no_args_is_help=True)
chats_app = typer.Typer(help="The website chat.", no_args_is_help=True)
sites_app = typer.Typer(help="Sites allowed to embed the chat widget.", no_args_is_help=True)
chats_app.add_typer(sites_app, name="sites")


def _session():  # noqa: ANN202
    from kizuna.db import new_session, ready_engine

    return new_session(ready_engine())


@knowledge_app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="a JSON list of {title, body, language, tags}")]) -> None:
    """Add the articles of a JSON file (all or none: a bad article names its position and field)."""
    import pydantic

    from kizuna.knowledge.schemas import ArticleCreate
    from kizuna.knowledge.service import create_article

    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] cannot read {path}: {exc}")
        raise typer.Exit(2) from exc
    if not isinstance(rows, list):
        console.print(f"[red]error:[/red] {path} must hold a JSON list of articles")
        raise typer.Exit(2)
    with _session() as session:
        for position, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                console.print(f"[red]error:[/red] article {position} is not a JSON object; nothing was added")
                raise typer.Exit(2)
            fields = {k: row[k] for k in ("title", "body", "language", "tags", "published") if k in row}
            try:
                create_article(session, actor=CLI, data=ArticleCreate.model_validate(fields))
            except (pydantic.ValidationError, KizunaError) as exc:
                session.rollback()
                console.print(f"article {position} refused; nothing was added")
                raise _fail(exc) from exc
        session.commit()
    console.print(f"{len(rows)} articles added")


@knowledge_app.command("list")
def list_() -> None:
    """Every article: id, language, published, title."""
    from kizuna.knowledge.service import list_articles

    with _session() as session:
        for a in list_articles(session):
            console.print(f"{a.id}\t{a.language}\t{'published' if a.published else 'draft'}\t{a.title}")


@knowledge_app.command("evaluate")
def evaluate_(
    path: Annotated[Path, typer.Argument(help='JSON {"answerable": [[question, article id]], "out_of_scope": []}')],
) -> None:
    """Measure the bot on your own questions: top-3 hits and hand-overs, at the shipped threshold."""
    from kizuna.knowledge.answer import current_index
    from kizuna.knowledge.evaluation import evaluate
    from kizuna.knowledge.retrieval import CONFIDENCE_THRESHOLD

    data = json.loads(path.read_text(encoding="utf-8"))
    answerable = [(str(q), int(i)) for q, i in data.get("answerable", [])]
    outside = [str(q) for q in data.get("out_of_scope", [])]
    with _session() as session:
        result = evaluate(current_index(session), answerable, outside, threshold=CONFIDENCE_THRESHOLD)
    console.print(f"top-3 {result.top3:.1%}  top-1 {result.top1:.1%}  answered {result.answered:.1%}  "
                  f"handed over {result.handed_over:.1%}")  # fmt: skip
    for q in result.misses:
        console.print(f"  not in top 3: {q}")
    for q in result.wrong_answers:
        console.print(f"  answered out of scope: {q}")


@sites_app.command("add")
def add_site(origin: Annotated[str, typer.Argument(help="e.g. https://shop.example")]) -> None:
    from kizuna.chat.service import add_origin

    with _session() as session:
        try:
            row = add_origin(session, actor=CLI, origin=origin)
        except KizunaError as exc:
            raise _fail(exc) from exc
        session.commit()
        console.print(row.origin)


@sites_app.command("list")
def list_sites() -> None:
    from kizuna.chat.service import list_origins

    with _session() as session:
        for row in list_origins(session):
            console.print(f"{row.id}\t{row.origin}")
