"""Test data built through the real services, so every row is what the product itself would write."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.customers import service as customers
from kizuna.customers.models import Customer
from kizuna.customers.schemas import CustomerCreate

SYSTEM = Actor.system("test")


def customer(session: Session, **fields: Any) -> Customer:
    fields.setdefault("family_name", "山田")
    fields.setdefault("given_name", "太郎")
    return customers.create_customer(session, actor=SYSTEM, data=CustomerCreate(**fields))


def at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)


def yen(amount: int | str) -> Decimal:
    return Decimal(str(amount))
