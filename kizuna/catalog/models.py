from __future__ import annotations

from decimal import Decimal

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, JSONType, Money, Timestamped, Versioned


class Product(Timestamped, Versioned, Base):
    """A product a customer can buy; category, taste and brand drive CTB analysis."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    taste: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(100), index=True)
    price: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="JPY")
    is_active: Mapped[bool] = mapped_column(default=True)
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
