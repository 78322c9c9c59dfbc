from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel

from kizuna.auth.permissions import require
from kizuna.knowledge import service
from kizuna.knowledge.answer import answer
from kizuna.knowledge.models import Article
from kizuna.knowledge.schemas import AnswerSource, ArticleCreate, ArticleRead, ArticleUpdate
from kizuna.web.api import require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/knowledge", tags=["knowledge"])
IfMatch = Annotated[str | None, Header()]


class AnswerRead(BaseModel):
    sources: list[AnswerSource]
    confident: bool
    asks_for_person: bool
    hand_over: bool


@router.get("", response_model=list[ArticleRead])
def list_articles(
    session: DB, actor: APIActor, language: Literal["ja", "en"] | None = None, q: str | None = None
) -> list[Article]:
    require(actor, "knowledge:read")
    return service.list_articles(session, language=language, q=q)


@router.get("/answer", response_model=AnswerRead)
def try_answer(session: DB, actor: APIActor, q: Annotated[str, Query(min_length=1, max_length=4000)]) -> AnswerRead:
    """What the bot would answer to ``q`` (for checking the knowledge base before publishing)."""
    require(actor, "knowledge:read")
    result = answer(session, q)
    return AnswerRead(
        sources=result.sources, confident=result.confident, asks_for_person=result.asks_for_person,
        hand_over=result.hand_over,
    )  # fmt: skip


@router.post("", response_model=ArticleRead, status_code=201)
def create_article(data: ArticleCreate, response: Response, session: DB, actor: APIActor) -> Article:
    article = service.create_article(session, actor=actor, data=data)
    session.commit()
    with_etag(response, article.version)
    response.headers["Location"] = f"/api/v1/knowledge/{article.id}"
    return article


@router.get("/{article_id}", response_model=ArticleRead)
def get_article(article_id: int, response: Response, session: DB, actor: APIActor) -> Article:
    require(actor, "knowledge:read")
    article = service.get_article(session, article_id)
    with_etag(response, article.version)
    return article


@router.patch("/{article_id}", response_model=ArticleRead)
def update_article(
    article_id: int, data: ArticleUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Article:
    version = require_precondition(if_match, data.version)
    article = service.update_article(session, actor=actor, article_id=article_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, article.version)
    return article


@router.delete("/{article_id}", status_code=204)
def delete_article(article_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    service.delete_article(session, actor=actor, article_id=article_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
