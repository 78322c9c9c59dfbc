from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from kizuna.schemas import Currency, FreeJSON, Input, MoneyIn, MoneyOut, Output, StoredJSON, Text, UTCTime, check_money

OrderStatus = Literal["pending", "completed", "cancelled", "returned"]


class OrderLineIn(Input):
    sku: Text | None = Field(default=None, max_length=128)
    product_id: int | None = None
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_price: MoneyIn
    amount: MoneyIn | None = Field(default=None, description="Defaults to quantity × unit_price.")

    @model_validator(mode="after")
    def _product_named(self) -> OrderLineIn:
        if self.sku is None and self.product_id is None:
            raise PydanticCustomError("line_needs_product", "a line needs a sku or a product_id")
        check_money(self.line_amount, "quantity × unit_price")
        return self

    @property
    def line_amount(self) -> Decimal:
        """The line's amount: as given, or quantity × unit_price."""
        return self.amount if self.amount is not None else self.unit_price * self.quantity


class OrderCreate(Input):
    external_id: Text | None = Field(default=None, max_length=128)
    customer_id: int
    ordered_at: UTCTime
    status: OrderStatus = "completed"
    channel: Text | None = Field(default=None, max_length=32)
    store: Text | None = Field(default=None, max_length=100)
    currency: Currency | None = None
    total_amount: MoneyIn | None = Field(default=None, description="Defaults to the sum of the lines.")
    attributes: FreeJSON | None = None
    # Many shops and POS systems know an order only as a total: such an order has no lines.
    lines: list[OrderLineIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _lines_or_total(self) -> OrderCreate:
        if not self.lines and self.total_amount is None:
            raise PydanticCustomError("order_needs_lines", "an order needs lines or a total_amount")
        return self

    @model_validator(mode="after")
    def _total_in_range(self) -> OrderCreate:
        if self.total_amount is None:
            check_money(sum((line.line_amount for line in self.lines), Decimal(0)), "the sum of the lines")
        return self


class OrderUpdate(Input):
    status: OrderStatus | None = None
    channel: Text | None = Field(default=None, max_length=32)
    store: Text | None = Field(default=None, max_length=100)
    attributes: FreeJSON | None = None
    version: int | None = None


class OrderLineRead(Output):
    id: int
    line_no: int
    product_id: int | None
    sku: str | None
    quantity: int
    unit_price: MoneyOut
    amount: MoneyOut


class OrderRead(Output):
    id: int
    external_id: str | None
    customer_id: int
    ordered_at: dt.datetime
    status: str
    channel: str | None
    store: str | None
    currency: str
    total_amount: MoneyOut
    attributes: StoredJSON
    lines: list[OrderLineRead]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
