from __future__ import annotations

import datetime as dt

from pydantic import Field

from kizuna.schemas import Currency, FreeJSON, Input, MoneyIn, MoneyOut, Output, StoredJSON, Text


class ProductCreate(Input):
    sku: Text = Field(min_length=1, max_length=128)
    name: Text = Field(min_length=1, max_length=300)
    category: Text | None = Field(default=None, max_length=100)
    taste: Text | None = Field(default=None, max_length=100)
    brand: Text | None = Field(default=None, max_length=100)
    price: MoneyIn | None = None
    currency: Currency | None = None
    is_active: bool | None = None
    attributes: FreeJSON | None = None


class ProductUpdate(ProductCreate):
    sku: Text | None = Field(default=None, min_length=1, max_length=128)  # type: ignore[assignment]
    name: Text | None = Field(default=None, min_length=1, max_length=300)  # type: ignore[assignment]
    version: int | None = None


class ProductRead(Output):
    id: int
    sku: str
    name: str
    category: str | None
    taste: str | None
    brand: str | None
    price: MoneyOut | None
    currency: str
    is_active: bool
    attributes: StoredJSON
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
