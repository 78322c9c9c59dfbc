"""Importing products: one row per SKU; a known SKU is updated only where the file says something new."""

from __future__ import annotations

from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.catalog.models import Product
from kizuna.catalog.schemas import ProductCreate, ProductUpdate
from kizuna.catalog.service import UPDATED
from kizuna.config import get_settings
from kizuna.imports.importer import (
    ImportOptions,
    PlainImporter,
    RowRejected,
    Warn,
    WriteContext,
    chunked,
    errors_from,
    field_error,
    ignore_warning,
)
from kizuna.imports.reader import Columns, Record
from kizuna.imports.report import Reason
from kizuna.imports.values import parse_decimal
from kizuna.outbox.service import emit_many

ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("商品コード", "品番", "商品ID", "商品番号", "JANコード", "product code", "item code", "product id"),
    "name": ("商品名", "品名", "名称", "product name", "item name", "product"),
    "category": ("カテゴリ", "カテゴリー", "分類", "商品カテゴリ", "商品分類"),
    "taste": ("テイスト", "味", "風味", "flavor", "flavour"),
    "brand": ("ブランド", "メーカー", "maker"),
    "price": ("価格", "単価", "販売価格", "定価", "unit price"),
    "currency": ("通貨",),
}
# A name is needed only for a new SKU, so a price list (sku, price) can update known products.
COLUMNS = Columns(aliases=ALIASES, required=[("sku",)])


class ProductImporter(PlainImporter):
    kind = "products"
    columns = COLUMNS

    def parse(self, record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> tuple[int, dict[str, Any]]:
        raw = dict(record.values)
        if "price" in raw:
            try:
                raw["price"] = parse_decimal(raw["price"])
            except ValueError as exc:
                raise RowRejected([field_error("price", exc)]) from None
        try:
            data = ProductCreate(**raw) if "name" in raw else ProductUpdate(**raw)
        except pydantic.ValidationError as exc:
            raise RowRejected(errors_from(exc)) from None
        return record.line, data.model_dump(exclude_none=True)

    def preview_values(self, parsed: tuple[int, dict[str, Any]]) -> dict[str, Any]:
        return parsed[1]

    def write(self, session: Session, rows: list[tuple[int, dict[str, Any]]], ctx: WriteContext) -> None:
        report = ctx.report
        wanted: dict[str, dict[str, Any]] = {}
        lines: dict[str, int] = {}
        for line, values in rows:
            if values["sku"] in wanted:
                report.duplicates += 1
            wanted.setdefault(values["sku"], {}).update(values)
            lines[values["sku"]] = line
        stored: dict[str, Product] = {}
        updated: list[tuple[Product, list[str]]] = []
        for chunk in chunked(list(wanted), 5000):
            stored.update((p.sku, p) for p in session.scalars(select(Product).where(Product.sku.in_(chunk))))
        currency = get_settings().default_currency
        for sku, values in wanted.items():
            product = stored.get(sku)
            if product is None and "name" not in values:
                report.reject(
                    lines[sku],
                    "name",
                    Reason(
                        f"name: empty, and SKU '{sku}' is not a known product",
                        "error.import_new_product_without_name",
                        {"sku": sku},
                    ),
                )
            elif product is None:
                values.setdefault("currency", currency)
                session.add(Product(attributes={}, **values))
                report.inserted += 1
                continue
            changed = {k: v for k, v in values.items() if getattr(product, k) != v}
            for name, value in changed.items():
                setattr(product, name, value)
            if changed:
                report.updated += 1
                updated.append((product, sorted(changed)))
            else:
                report.unchanged += 1
        session.flush()
        # As update_product: segments over what customers bought follow these.
        emit_many(
            session,
            UPDATED,
            [({"product_id": product.id, "fields": fields}, None, None) for product, fields in updated],
            origin=ctx.actor.origin,
        )


IMPORTER = ProductImporter()
