"""Custom field definitions: what an admin added to customers, companies or deals.

A definition only describes a key of the record's existing ``attributes`` JSON column (its type and rules);
the values stay in ``attributes``, so adding a field needs no migration and deleting one loses no value.
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Timestamped, Versioned

ENTITIES = ("customer", "company", "deal")
TYPES = ("text", "number", "date", "choice", "multi_choice", "url", "user")


class CustomField(Timestamped, Versioned, Base):
    __tablename__ = "custom_fields"
    __table_args__ = (
        UniqueConstraint("entity", "key"),
        CheckConstraint("entity IN ('customer', 'company', 'deal')", name="entity"),
        CheckConstraint("type IN ('text', 'number', 'date', 'choice', 'multi_choice', 'url', 'user')", name="type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(16))
    # The key in ``attributes`` (addressed as ``attributes.<key>``); fixed once created, like its type, so that
    # stored values, saved filters and segment rules never change meaning.
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str | None] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    # choice / multi_choice: the allowed values, in the order the form shows them.
    choices: Mapped[list] = mapped_column(JSONType, default=list)
    min_value: Mapped[float | None] = mapped_column(Float)
    max_value: Mapped[float | None] = mapped_column(Float)
    max_length: Mapped[int | None] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    help_text: Mapped[str | None] = mapped_column(Text)
