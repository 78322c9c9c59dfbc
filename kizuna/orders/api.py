from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import select

from kizuna.auth.permissions import require
from kizuna.orders import service
from kizuna.orders.filters import ORDER_FILTERS
from kizuna.orders.models import Order
from kizuna.orders.schemas import OrderCreate, OrderRead, OrderUpdate
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Sort, page_of, require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/orders", tags=["orders"])
IfMatch = Annotated[str | None, Header()]


@router.get("", response_model=Page[OrderRead])
def list_orders(
    request: Request, session: DB, actor: APIActor, sort: Sort = None, cursor: Cursor = None, limit: Limit = 50
) -> dict:
    require(actor, "orders:read")
    return page_of(
        session, ORDER_FILTERS, select(Order), request, schema=OrderRead, sort=sort, cursor=cursor, limit=limit
    )


@router.post("", response_model=OrderRead, status_code=201)
def create_order(data: OrderCreate, response: Response, session: DB, actor: APIActor) -> Order:
    """An order with its line items; products are named by sku or product_id."""
    order = service.create_order(session, actor=actor, data=data)
    session.commit()
    with_etag(response, order.version)
    response.headers["Location"] = f"/api/v1/orders/{order.id}"
    return order


@router.get("/{order_id}", response_model=OrderRead)
def get_order(order_id: int, response: Response, session: DB, actor: APIActor) -> Order:
    require(actor, "orders:read")
    order = service.get_order(session, order_id)
    with_etag(response, order.version)
    return order


@router.patch("/{order_id}", response_model=OrderRead)
def update_order(
    order_id: int, data: OrderUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Order:
    version = require_precondition(if_match, data.version)
    order = service.update_order(session, actor=actor, order_id=order_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, order.version)
    return order


@router.delete("/{order_id}", status_code=204)
def delete_order(order_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    service.delete_order(session, actor=actor, order_id=order_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
