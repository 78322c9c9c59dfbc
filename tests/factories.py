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


# --- added for the UI tests (tests/web) ---------------------------------------------------------------


def user(session: Session, *, email: str, role: str, password: str = "password-123456", name: str = "") -> Any:  # noqa: S107
    from kizuna.auth import service as auth

    return auth.create_user(session, actor=SYSTEM, email=email, password=password, role=role, name=name)


def product(session: Session, *, sku: str, name: str, price: int = 1000, **fields: Any) -> Any:
    from kizuna.catalog import service as catalog
    from kizuna.catalog.schemas import ProductCreate

    return catalog.create_product(session, actor=SYSTEM, data=ProductCreate(sku=sku, name=name, price=price, **fields))


def order(
    session: Session, *, customer_id: int, ordered_at: dt.datetime, lines: list[dict[str, Any]], **fields: Any
) -> Any:
    from kizuna.orders import service as orders
    from kizuna.orders.schemas import OrderCreate

    data = OrderCreate(customer_id=customer_id, ordered_at=ordered_at, lines=lines, **fields)
    return orders.create_order(session, actor=SYSTEM, data=data)


def event(
    session: Session, *, customer_id: int, type: str, channel: str, occurred_at: dt.datetime, **fields: Any
) -> Any:  # noqa: A002
    from kizuna.events import service as events
    from kizuna.events.schemas import EventCreate

    data = EventCreate(customer_id=customer_id, type=type, channel=channel, occurred_at=occurred_at, **fields)
    return events.record_event(session, actor=SYSTEM, data=data)[0]


def consent(session: Session, *, customer_id: int, channel: str, status: str = "granted", **fields: Any) -> Any:
    from kizuna.customers.schemas import ConsentCreate

    fields.setdefault("method", "web_form")
    data = ConsentCreate(channel=channel, status=status, **fields)
    return customers.record_consent(session, actor=SYSTEM, customer_id=customer_id, data=data)


def message(session: Session, *, customer_id: int, key: str, kind: str = "marketing", **fields: Any) -> Any:
    """A queued email (what a journey or campaign writes through ``messaging.queue``)."""
    from kizuna.messaging.queue import NewMessage, queue

    fields.setdefault("content", {"subject": "お知らせ", "text": "本文"})
    return queue(session, NewMessage(key=key, customer_id=customer_id, channel="email", kind=kind, **fields))


def activity(session: Session, *, customer_id: int, subject: str = "電話でヒアリング", **fields: Any) -> Any:
    from kizuna.sales import activities
    from kizuna.sales.schemas import ActivityCreate

    fields.setdefault("kind", "call")
    data = ActivityCreate(customer_id=customer_id, subject=subject, **fields)
    return activities.log_activity(session, actor=SYSTEM, data=data)


def task(session: Session, *, customer_id: int, title: str = "見積書を送る", **fields: Any) -> Any:
    from kizuna.sales import activities
    from kizuna.sales.schemas import TaskCreate

    return activities.create_task(
        session, actor=SYSTEM, data=TaskCreate(customer_id=customer_id, title=title, **fields)
    )


def survey_response(session: Session, *, customer_id: int, score: int = 9, comment: str = "丁寧な対応でした") -> Any:
    """An NPS answer stored as it is after a POST through its link, without the ``nps.answered`` event (for pages
    that expect one row of each timeline kind)."""
    from kizuna.db import utcnow
    from kizuna.surveys.models import Survey, SurveyResponse

    survey = Survey(name=f"NPS {customer_id}-{score}", question_ja="薦めますか?", question_en="Recommend?")
    session.add(survey)
    session.flush()
    now = utcnow()
    found = SurveyResponse(
        survey_id=survey.id, customer_id=customer_id, score=score, comment=comment, touchpoint="purchase",
        source="link", send_key="factory", answered_at=now, updated_at=now,
    )  # fmt: skip
    session.add(found)
    session.flush()
    return found
