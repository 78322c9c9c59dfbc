"""FAQ articles: written by support and admins, read by the chat bot (``kizuna.knowledge.answer``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import check_version
from kizuna.errors import NotFound, ValidationError
from kizuna.knowledge.models import Article
from kizuna.knowledge.schemas import ArticleCreate, ArticleUpdate


def get_article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    if article is None:
        raise NotFound(f"article {article_id} not found")
    return article


def list_articles(session: Session, *, language: str | None = None, q: str | None = None) -> list[Article]:
    """Every article (published or not), newest first; ``q`` matches the title."""
    query = select(Article).order_by(Article.updated_at.desc(), Article.id.desc())
    if language:
        query = query.where(Article.language == language)
    if q:
        query = query.where(Article.title.ilike(f"%{q}%"))
    return list(session.scalars(query))


def create_article(session: Session, *, actor: Actor, data: ArticleCreate) -> Article:
    require(actor, "knowledge:write")
    article = Article(**data.model_dump())
    session.add(article)
    session.flush()
    audit.record(
        session, actor=actor, action="article.create", entity_type="article", entity_id=article.id,
        summary=article.title,
    )  # fmt: skip
    return article


def update_article(
    session: Session, *, actor: Actor, article_id: int, data: ArticleUpdate, expected_version: int | None
) -> Article:
    require(actor, "knowledge:write")
    article = get_article(session, article_id)
    check_version(article.version, if_match=expected_version, body=data.version)
    changes = data.model_dump(exclude={"version"}, exclude_unset=True)
    for required in ("title", "body", "language", "published"):
        if required in changes and changes[required] is None:
            raise ValidationError(f"{required} cannot be empty", field=required)
    audit.apply_changes(session, article, changes, actor=actor, entity_type="article")
    return article


def delete_article(
    session: Session, *, actor: Actor, article_id: int, expected_version: int | None, version: int | None = None
) -> None:
    """Delete the article for good. ``expected_version`` comes from an If-Match header (412 when stale),
    ``version`` from a form (409 when stale). The bot's index drops it on its next question."""
    require(actor, "knowledge:write")
    article = get_article(session, article_id)
    check_version(article.version, if_match=expected_version, body=version)
    audit.record(
        session, actor=actor, action="article.delete", entity_type="article", entity_id=article.id,
        summary=article.title,
    )  # fmt: skip
    session.delete(article)
