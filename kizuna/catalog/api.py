from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from sqlalchemy import select

from kizuna.auth.permissions import require
from kizuna.catalog import service
from kizuna.catalog.filters import PRODUCT_FILTERS
from kizuna.catalog.models import Product
from kizuna.catalog.schemas import ProductCreate, ProductRead, ProductUpdate
from kizuna.schemas import Page
from kizuna.web.api import Cursor, Limit, Q, Sort, page_of, require_if_match, require_precondition, with_etag
from kizuna.web.deps import DB, APIActor

router = APIRouter(prefix="/products", tags=["products"])
IfMatch = Annotated[str | None, Header()]


@router.get("", response_model=Page[ProductRead])
def list_products(
    request: Request,
    session: DB,
    actor: APIActor,
    q: Q = None,
    sort: Sort = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> dict:
    require(actor, "products:read")
    return page_of(
        session, PRODUCT_FILTERS, select(Product), request, schema=ProductRead, sort=sort, cursor=cursor, limit=limit
    )


@router.post("", response_model=ProductRead, status_code=201)
def create_product(data: ProductCreate, response: Response, session: DB, actor: APIActor) -> Product:
    product = service.create_product(session, actor=actor, data=data)
    session.commit()
    with_etag(response, product.version)
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    return product


@router.get("/{product_id}", response_model=ProductRead)
def get_product(product_id: int, response: Response, session: DB, actor: APIActor) -> Product:
    require(actor, "products:read")
    product = service.get_product(session, product_id)
    with_etag(response, product.version)
    return product


@router.patch("/{product_id}", response_model=ProductRead)
def update_product(
    product_id: int, data: ProductUpdate, response: Response, session: DB, actor: APIActor, if_match: IfMatch = None
) -> Product:
    version = require_precondition(if_match, data.version)
    product = service.update_product(session, actor=actor, product_id=product_id, data=data, expected_version=version)
    session.commit()
    with_etag(response, product.version)
    return product


@router.delete("/{product_id}", status_code=204)
def delete_product(product_id: int, session: DB, actor: APIActor, if_match: IfMatch = None) -> Response:
    service.delete_product(session, actor=actor, product_id=product_id, expected_version=require_if_match(if_match))
    session.commit()
    return Response(status_code=204)
