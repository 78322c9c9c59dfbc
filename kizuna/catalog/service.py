"""Products: what customers buy, described by category, taste and brand."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.catalog.models import Product
from kizuna.catalog.schemas import ProductCreate, ProductUpdate
from kizuna.config import get_settings
from kizuna.db import check_version
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.outbox.service import emit

# Outbox topics (no customer: a product's change reaches everyone who bought it).
UPDATED = "product.updated"
DELETED = "product.deleted"


def get_product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


def _sku_free(session: Session, sku: str, product_id: int | None = None) -> None:
    owner = session.scalar(select(Product.id).where(Product.sku == sku))
    if owner is not None and owner != product_id:
        raise Conflict(f"sku {sku} already belongs to product {owner}", field="sku")


def create_product(session: Session, *, actor: Actor, data: ProductCreate) -> Product:
    require(actor, "products:write")
    _sku_free(session, data.sku)
    values = data.model_dump(exclude_none=True)
    values.setdefault("currency", get_settings().default_currency)
    product = Product(**{"attributes": {}, **values})
    session.add(product)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="product.create",
        entity_type="product",
        entity_id=product.id,
        summary=f"{product.sku} {product.name}",
    )
    return product


def update_product(
    session: Session, *, actor: Actor, product_id: int, data: ProductUpdate, expected_version: int | None
) -> Product:
    require(actor, "products:write")
    product = get_product(session, product_id)
    check_version(product.version, if_match=expected_version, body=data.version)
    changes = data.model_dump(exclude={"version"}, exclude_unset=True)
    for required in ("sku", "name", "currency"):
        if required in changes and not changes[required]:
            raise ValidationError(f"{required} cannot be empty", field=required)
    if "sku" in changes:
        _sku_free(session, changes["sku"], product.id)
    diff = audit.apply_changes(session, product, changes, actor=actor, entity_type="product")
    if diff:
        # What a product is (its category, brand, SKU) decides who "bought" it: segments follow this.
        emit(session, UPDATED, {"product_id": product.id, "fields": sorted(diff)}, origin=actor.origin)
    return product


def delete_product(session: Session, *, actor: Actor, product_id: int, expected_version: int | None) -> None:
    require(actor, "products:delete")
    product = get_product(session, product_id)
    check_version(product.version, if_match=expected_version)
    audit.record(
        session, actor=actor, action="product.delete", entity_type="product", entity_id=product.id, summary=product.sku
    )
    emit(session, DELETED, {"product_id": product.id, "sku": product.sku}, origin=actor.origin)
    session.delete(product)


def product_names(session: Session, product_ids: set[int]) -> dict[int, str]:
    """Product id -> name, for the products that still exist."""
    if not product_ids:
        return {}
    rows = session.execute(select(Product.id, Product.name).where(Product.id.in_(product_ids)))
    return {product_id: name for product_id, name in rows}
