from __future__ import annotations

from sqlalchemy import ColumnElement, or_

from kizuna.catalog.models import Product
from kizuna.listing import ORDERED, TEXT, Filter, FilterSet, _escape_like
from kizuna.normalize import normalize_text


def _search(raw: str) -> ColumnElement[bool]:
    like = f"%{_escape_like(normalize_text(raw) or '')}%"
    return or_(Product.sku.ilike(like, escape="\\"), Product.name.ilike(like, escape="\\"))


PRODUCT_FILTERS = FilterSet(
    model=Product,
    fields={
        "id": Filter(Product.id, "int", ORDERED),
        "sku": Filter(Product.sku, "str", TEXT),
        "name": Filter(Product.name, "str", TEXT),
        "category": Filter(Product.category, "str", TEXT),
        "taste": Filter(Product.taste, "str", TEXT),
        "brand": Filter(Product.brand, "str", TEXT),
        "price": Filter(Product.price, "decimal", ORDERED),
        "currency": Filter(Product.currency, "str", ("eq", "in")),
        "is_active": Filter(Product.is_active, "bool", ("eq",)),
        "created_at": Filter(Product.created_at, "datetime", ORDERED),
    },
    sorts={"id": Product.id, "sku": Product.sku, "name": Product.name, "created_at": Product.created_at},
    default_sort="sku",
    search=_search,
)
