"""FAQ articles the team writes; the chat bot answers from the published ones."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Timestamped, Versioned

LANGUAGES = ("ja", "en")


class Article(Timestamped, Versioned, Base):
    """One FAQ article: a question-shaped title and its answer, in one language."""

    __tablename__ = "knowledge_articles"
    __table_args__ = (CheckConstraint("language IN ('ja', 'en')", name="language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2), index=True)
    tags: Mapped[list] = mapped_column(JSONType, default=list)
    published: Mapped[bool] = mapped_column(default=True, index=True)
