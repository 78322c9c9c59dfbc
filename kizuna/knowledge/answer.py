"""The FAQ bot's answer to one question: the best published articles and whether it is confident enough.

The index is built from the database once per process and rebuilt when the published articles change (their
count, newest change or version sum differ: one small query per question). Each article's tokens are kept
by its text, so a rebuild after one edit analyses only that article; BM25 over the kept tokens of
1,000 articles builds in tens of milliseconds.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.knowledge.models import Article
from kizuna.knowledge.retrieval import (
    CONFIDENCE_THRESHOLD,
    Document,
    KnowledgeIndex,
    analyzer,
    document_tokens,
    query_language,
)
from kizuna.knowledge.schemas import AnswerSource

# Asking for a person hands over whatever the articles say (checked on the NFKC, case-folded question).
_ASK_FOR_PERSON = re.compile(
    r"担当者|人と話|人間|オペレーター|スタッフと|電話で話|有人|窓口の人|代わって"
    r"|\b(human|agent|person|operator|representative|real people|someone real|talk to (a |an )?(staff|support))\b",
    re.IGNORECASE,
)
SNIPPET = 160


@dataclass(frozen=True)
class Answer:
    """The bot's reply: the sources (best first) and whether to hand the chat to a person."""

    sources: list[AnswerSource]
    confident: bool
    asks_for_person: bool
    language: str

    @property
    def hand_over(self) -> bool:
        return self.asks_for_person or not self.confident


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (title, body, tags) -> tokens: an unchanged article is not analysed again.
        self.tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = {}
        self.indexes: dict[str, tuple[tuple, KnowledgeIndex]] = {}


_cache = _Cache()


def asks_for_person(text: str) -> bool:
    import unicodedata

    return bool(_ASK_FOR_PERSON.search(unicodedata.normalize("NFKC", text)))


def current_index(session: Session) -> KnowledgeIndex:
    """The index of the published articles in this session's database, rebuilt only when they changed."""
    bind = str(session.get_bind().url)
    stamp = tuple(
        session.execute(
            select(func.count(Article.id), func.max(Article.updated_at), func.sum(Article.version)).where(
                Article.published.is_(True)
            )
        ).one()
    )
    cached = _cache.indexes.get(bind)
    if cached and cached[0] == stamp:
        return cached[1]
    with _cache.lock:
        cached = _cache.indexes.get(bind)
        if cached and cached[0] == stamp:
            return cached[1]
        analyser = analyzer()
        rows = session.execute(
            select(Article.id, Article.version, Article.language, Article.title, Article.body, Article.tags).where(
                Article.published.is_(True)
            )
        ).all()
        documents = []
        kept: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = {}
        for article_id, _version, language, title, body, tags in rows:
            key = (title, body, tuple(tags or ()))
            tokens = _cache.tokens.get(key)
            if tokens is None:
                tokens = document_tokens(analyser, title, body, tags or ())
            kept[key] = tokens
            documents.append(Document(article_id, language, tokens))
        # Only the current articles' tokens stay (for this database; another's are analysed again if needed).
        _cache.tokens = kept
        index = KnowledgeIndex(documents, analyser)
        _cache.indexes[bind] = (stamp, index)
        return index


def _snippet(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= SNIPPET else flat[: SNIPPET - 1] + "…"


def answer(session: Session, question: str, *, k: int = 3, link_base: str = "") -> Answer:
    """The articles that answer ``question`` and whether the bot is confident (see retrieval.py)."""
    hits = current_index(session).search(question, k=k)
    articles = {a.id: a for a in session.scalars(select(Article).where(Article.id.in_([h.id for h in hits])))}
    sources = [
        AnswerSource(
            id=h.id,
            title=articles[h.id].title,
            snippet=_snippet(articles[h.id].body),
            url=f"{link_base}/faq/{h.id}",
            confidence=round(h.confidence, 3),
        )
        for h in hits
        if h.id in articles
    ]
    confident = bool(sources) and sources[0].confidence >= CONFIDENCE_THRESHOLD
    return Answer(
        sources=sources, confident=confident, asks_for_person=asks_for_person(question),
        language=query_language(question),
    )  # fmt: skip
