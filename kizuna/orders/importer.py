"""Importing orders: one CSV row per line item, grouped into orders by order id; an order lands whole or not at all.

A file with one row per order and no line items (order id, customer, date, total), as many shops and POS
systems export, imports too: such orders have a total and no lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.catalog.models import Product
from kizuna.config import get_settings
from kizuna.customers.references import (
    CUSTOMER_REFS,
    REFERENCE_ALIASES,
    describe_missing,
    parse_customer_ref,
    resolve_customers,
)
from kizuna.db import utcnow
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
from kizuna.imports.values import nfkc, parse_datetime, parse_decimal, parse_int
from kizuna.normalize import normalize_text
from kizuna.orders.models import Order, OrderLine
from kizuna.orders.schemas import OrderCreate
from kizuna.outbox.service import emit_many

ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("注文ID", "受注ID", "order id"),
    **REFERENCE_ALIASES,
    "ordered_at": (
        "注文日時",
        "注文日",
        "購入日",
        "購入日時",
        "受注日",
        "受注日時",
        "order date",
        "ordered",
        "date",
    ),
    "sku": ("商品コード", "SKU", "品番", "product code", "item code", "lineitem sku"),
    # Only names the placeholder product that --create-products makes for an unknown SKU.
    "product_name": ("商品名", "product name", "item name", "lineitem name"),
    # EC-CUBE's 明細区分: rows of a kind other than 商品 (送料, 手数料, 割引, 税, ポイント) are not line items.
    "line_type": ("明細区分", "明細区分(名称)"),
    "quantity": ("数量", "個数", "qty", "lineitem quantity"),
    "unit_price": ("単価", "価格", "販売価格", "price", "unit price", "lineitem price"),
    # Not 小計 / subtotal: in EC-CUBE and Shopify exports that is the order's subtotal, not a line's amount.
    "amount": ("明細金額", "line amount", "line total"),
    "total_amount": ("金額", "合計", "合計金額", "注文金額", "total", "order total"),
    "currency": ("通貨",),
    "status": (
        "ステータス",
        "状態",
        "注文ステータス",
        "order status",
        "対応状況",
        "対応状況(名称)",
        "financial status",
    ),
    "channel": ("チャネル", "チャンネル", "販売チャネル", "購入経路", "source"),
    "store": ("店舗", "店舗名", "店舗コード", "shop"),
    # A Kizuna orders export: the order's lines as one JSON list.
    "lines": (),
}
COLUMNS = Columns(
    aliases=ALIASES,
    required=[("external_id",), CUSTOMER_REFS, ("ordered_at",), ("sku", "lines", "total_amount")],
    fallbacks={
        # EC-CUBE exports 注文ID and 注文番号, Shopify only Name ("#1001") beside its own numeric Id.
        "external_id": ("注文番号", "受注番号", "order no", "order number", "name"),
        # Shopify's order date; in Kizuna's own export created_at is the record's, beside ordered_at.
        "ordered_at": ("created at",),
        # EC-CUBE exports its numeric 商品ID beside the 商品コード the catalogue knows.
        "sku": ("商品ID", "商品番号"),
    },
)
_STATUS = {
    "完了": "completed",
    "発送済": "completed",
    "発送済み": "completed",
    "キャンセル": "cancelled",
    "取消": "cancelled",
    "注文取消し": "cancelled",
    "canceled": "cancelled",
    "返品": "returned",
    "保留": "pending",
    "処理中": "pending",
    "未発送": "pending",
    # EC-CUBE 4 対応状況
    "新規受付": "pending",
    "入金済み": "pending",
    "対応中": "pending",
    "購入処理中": "pending",
    "決済処理中": "pending",
    # Shopify Financial Status
    "paid": "completed",
    "partially_refunded": "completed",
    "authorized": "pending",
    "partially_paid": "pending",
    "refunded": "returned",
    "voided": "cancelled",
}
_PRODUCT_LINE_TYPES = frozenset({"商品", "product"})
# Order-level values every line of one order must agree on.
HEADER_FIELDS = ("customer", "ordered_at", "status", "channel", "store", "currency", "total_amount")
_ITEM_FIELDS = ("sku", "quantity", "unit_price", "amount")
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "ordered_at": parse_datetime,
    "total_amount": parse_decimal,
    "quantity": parse_int,
    "unit_price": parse_decimal,
    "amount": parse_decimal,
}


@dataclass
class OrderLineRow:
    """One row of an orders file: its order-level values and, when it describes a product, one line item."""

    line: int
    order_id: str
    header: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, Reason]] = field(default_factory=list)
    product_names: dict[str, str] = field(default_factory=dict)


@dataclass
class OrderRows:
    order_id: str
    rows: list[OrderLineRow]


class OrderImporter(PlainImporter):
    kind = "orders"
    columns = COLUMNS

    def parse(self, record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> OrderLineRow:
        raw = record.values
        order_id = normalize_text(raw.get("external_id"))
        if not order_id:
            raise RowRejected([("external_id", Reason("external_id: the order id is empty", "error.import_empty"))])
        row = OrderLineRow(record.line, order_id)
        _parse_header(row, raw)
        if "lines" in raw:
            _parse_lines(row, raw["lines"])
        elif "sku" in raw:
            _parse_item(row, raw)
        elif raw.get("line_type") is not None and nfkc(raw["line_type"]).casefold() not in _PRODUCT_LINE_TYPES:
            pass  # a shipping, fee, discount or tax row: the order's total already holds it
        elif any(name in raw for name in _ITEM_FIELDS):
            warn(
                "sku",
                Reason(
                    "sku: empty, so the row is not imported as a line item (the rest of the order is)",
                    "error.import_line_without_sku",
                ),
            )
        return row

    def preview_values(self, parsed: OrderLineRow) -> dict[str, Any]:
        shown: dict[str, Any] = {"external_id": parsed.order_id, **parsed.header}
        customer = shown.pop("customer", None)
        if customer is not None:
            shown[customer[0]] = customer[1]
        if parsed.items:
            shown["lines"] = parsed.items
        return shown

    def batches(self, rows: Iterable[OrderLineRow], size: int) -> Iterator[list[OrderRows]]:
        # Lines of one order may be anywhere in the file, so the whole file is grouped first.
        orders: dict[str, OrderRows] = {}
        for row in rows:
            orders.setdefault(row.order_id, OrderRows(row.order_id, [])).rows.append(row)
        batch: list[OrderRows] = []
        lines = 0
        for order in orders.values():
            batch.append(order)
            lines += len(order.rows)
            if lines >= size:
                yield batch
                batch, lines = [], 0
        if batch:
            yield batch

    def write(self, session: Session, orders: list[OrderRows], ctx: WriteContext) -> None:
        report = ctx.report
        report.duplicates += sum(len(o.rows) - 1 for o in orders)
        refs = {r.header["customer"] for o in orders for r in o.rows if "customer" in r.header}
        customers = resolve_customers(session, refs)
        items = [i for o in orders for r in o.rows for i in r.items]
        products = _products(session, {i["sku"] for i in items if "sku" in i})
        product_ids = _product_ids(session, {i["product_id"] for i in items if "sku" not in i and "product_id" in i})
        stored: dict[str, Order] = {}
        for chunk in chunked([o.order_id for o in orders], 5000):
            stored.update(
                (o.external_id, o) for o in session.scalars(select(Order).where(Order.external_id.in_(chunk)))
            )
        default_currency = get_settings().default_currency
        completed: list[Order] = []  # inserted as completed, or moved to completed: what the API announces
        updated: list[tuple[Order, int]] = []  # changed orders, each with the customer it belonged to before
        for order in orders:
            try:
                data = _order_data(session, order, customers, products, product_ids, default_currency, ctx)
            except RowRejected as exc:
                _reject_order(ctx, order, exc.errors)
                continue
            lines = [
                {"line_no": i, "product_id": products.get(item.sku) if item.sku else item.product_id,
                 "sku": item.sku, "quantity": item.quantity, "unit_price": item.unit_price,
                 "amount": item.amount if item.amount is not None else item.unit_price * item.quantity}
                for i, item in enumerate(data.lines, start=1)
            ]  # fmt: skip
            total = (
                data.total_amount if data.total_amount is not None else sum((x["amount"] for x in lines), Decimal(0))
            )
            header = {
                "customer_id": data.customer_id,
                "ordered_at": data.ordered_at,
                "status": data.status,
                "channel": data.channel,
                "store": data.store,
                "currency": data.currency or default_currency,
                "total_amount": total,
            }
            existing = stored.get(order.order_id)
            if existing is None:
                new = Order(
                    external_id=order.order_id,
                    attributes={},
                    lines=[OrderLine(customer_id=data.customer_id, **x) for x in lines],
                    **header,
                )
                session.add(new)
                if new.status == "completed":
                    completed.append(new)
                report.inserted += 1
            elif _same(existing, header, lines):
                report.unchanged += 1
            else:
                if header["status"] == "completed" and existing.status != "completed":
                    completed.append(existing)
                updated.append((existing, existing.customer_id))
                for name, value in header.items():
                    if getattr(existing, name) != value:
                        setattr(existing, name, value)
                existing.lines = [OrderLine(customer_id=data.customer_id, **x) for x in lines]
                existing.updated_at = utcnow()  # the order row changes (and its version bumps) even if only lines did
                report.updated += 1
        session.flush()
        emit_many(
            session,
            "order.completed",
            [({"order_id": o.id, "customer_id": o.customer_id}, o.customer_id, o.ordered_at) for o in completed],
            origin=ctx.actor.origin,
        )
        # As update_order: a changed order (a cancellation) changes its customer's spend; an order moved to
        # another customer changes both.
        emit_many(
            session,
            "order.updated",
            [
                ({"order_id": o.id, "customer_id": customer_id}, customer_id, None)
                for o, before in updated
                for customer_id in dict.fromkeys((o.customer_id, before))
            ],
            origin=ctx.actor.origin,
        )


IMPORTER = OrderImporter()


def _parse_header(row: OrderLineRow, raw: dict[str, Any]) -> None:
    """The row's order-level values; a file may give them on the order's first row only (Shopify does)."""
    try:
        customer = parse_customer_ref(raw)
    except RowRejected as exc:
        row.errors.extend(exc.errors)
    else:
        if customer is not None:
            row.header["customer"] = customer
    for name in ("ordered_at", "status", "channel", "store", "currency", "total_amount"):
        if name in raw:
            try:
                value = _PARSERS[name](raw[name]) if name in _PARSERS else nfkc(raw[name])
            except ValueError as exc:
                row.errors.append(field_error(name, exc))
                continue
            row.header[name] = _STATUS.get(value, value.casefold()) if name == "status" else value


def _parse_item(row: OrderLineRow, raw: dict[str, Any]) -> None:
    item: dict[str, Any] = {}
    for name in _ITEM_FIELDS:
        if name in raw:
            try:
                item[name] = _PARSERS[name](raw[name]) if name in _PARSERS else nfkc(raw[name])
            except ValueError as exc:
                row.errors.append(field_error(name, exc))
    if "unit_price" not in item and "amount" in item:
        # The line keeps the given amount; the derived unit price is rounded to the cent.
        unit = item["amount"] / item["quantity"] if item.get("quantity") else item["amount"]
        item["unit_price"] = unit.quantize(Decimal("0.01"))
    if "unit_price" not in item and not any(f in ("unit_price", "amount") for f, _ in row.errors):
        row.errors.append(
            ("unit_price", Reason("unit_price: empty (give unit_price or amount)", "error.import_no_unit_price"))
        )
    if "product_name" in raw and "sku" in item:
        row.product_names[item["sku"]] = nfkc(raw["product_name"])
    row.items.append(item)


def _parse_lines(row: OrderLineRow, cell: Any) -> None:
    """The ``lines`` column of a Kizuna orders export: a JSON list of line items."""
    try:
        lines = json.loads(cell) if isinstance(cell, str) else cell
        if not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines):
            raise ValueError("must be a JSON list of objects")
    except ValueError as exc:
        row.errors.append(
            field_error("lines", Reason(f"not a list of line items ({exc})", "error.import_not_line_items"))
        )
        return
    for line in lines:
        row.items.append({k: line[k] for k in ("sku", "product_id", *_ITEM_FIELDS) if line.get(k) is not None})


def _order_data(
    session: Session,
    order: OrderRows,
    customers: dict[tuple[str, Any], int],
    products: dict[str, int],
    product_ids: set[int],
    default_currency: str,
    ctx: WriteContext,
) -> OrderCreate:
    errors = [e for r in order.rows for e in r.errors]
    if errors:
        raise RowRejected(errors)
    header: dict[str, Any] = {}
    for row in order.rows:
        for name, value in row.header.items():
            if name in header and header[name] != value:
                reason = f"{name}: lines of order {order.order_id} disagree ({header[name]} / {value})"
                params = {"order": order.order_id, "first": header[name], "other": value}
                raise RowRejected([(name, Reason(reason, "error.import_order_lines_disagree", params))])
            header[name] = value
    if "ordered_at" not in header:
        raise RowRejected([("ordered_at", Reason("ordered_at: empty", "error.import_empty"))])
    ref = header.pop("customer", None)
    if ref is None:
        raise RowRejected(
            [
                (
                    "customer_external_id",
                    Reason("customer_external_id: the order names no customer", "error.import_no_customer"),
                )
            ]
        )
    customer_id = customers.get(ref)
    if customer_id is None:
        raise RowRejected([describe_missing(ref)])
    items = [item for r in order.rows for item in r.items]
    if not items and "total_amount" not in header:
        raise RowRejected(
            [("total_amount", Reason("total_amount: empty, and the order has no line items", "error.import_no_total"))]
        )
    unknown = sorted({i["sku"] for i in items if "sku" in i} - set(products))
    if unknown and not ctx.options.create_products:
        raise RowRejected(
            [
                (
                    "sku",
                    Reason(
                        f"sku: unknown product '{sku}' (import products first or use --create-products)",
                        "error.import_unknown_sku",
                        {"sku": sku},
                    ),
                )
                for sku in unknown
            ]
        )
    missing_ids = sorted({i["product_id"] for i in items if "sku" not in i and "product_id" in i} - product_ids)
    if missing_ids:
        listed = ", ".join(map(str, missing_ids))
        reason = Reason(f"lines: unknown product_id {listed}", "error.import_unknown_product_id", {"ids": listed})
        raise RowRejected([("lines", reason)])
    try:
        data = OrderCreate(customer_id=customer_id, lines=items, **header)
    except pydantic.ValidationError as exc:
        raise RowRejected(errors_from(exc)) from None
    names = {sku: name for r in order.rows for sku, name in r.product_names.items()}
    for sku in unknown:
        # A placeholder product named as the file names it (or by its SKU); a later products import fills in the rest.
        price = next(line.unit_price for line in data.lines if line.sku == sku)
        product = Product(
            sku=sku,
            name=names.get(sku, sku)[:300],
            price=price,
            currency=data.currency or default_currency,
            attributes={},
        )
        session.add(product)
        session.flush()
        products[sku] = product.id
        ctx.report.note("products created")
    return data


def _reject_order(ctx: WriteContext, order: OrderRows, errors: list[tuple[str, Reason]]) -> None:
    """Every line of the order is reported: the ones at fault with their reason, the rest as rejected with it."""
    faulty = sorted({r.line for r in order.rows if r.errors})
    summary = "; ".join(reason.text for _, reason in errors)
    for row in order.rows:
        if row.errors:
            for name, reason in row.errors:
                ctx.report.reject(row.line, name, reason.reworded(f"{reason} (order {order.order_id} rejected)"))
        elif faulty:
            # Sound itself, rejected with its order: the reason points at the lines at fault.
            lines = ", ".join(map(str, faulty))
            field_name = errors[0][0] if errors else "row"
            reason = Reason(
                f"order {order.order_id} rejected: {summary} (fault on line {lines})",
                "error.import_order_rejected_elsewhere",
                {"order": order.order_id, "lines": lines},
            )
            ctx.report.reject(row.line, field_name, reason)
        else:
            # The fault is the order's (an unknown customer, lines that disagree): each line gets its reasons.
            for name, reason in errors:
                ctx.report.reject(row.line, name, reason.reworded(f"order {order.order_id} rejected: {reason}"))


def _same(order: Order, header: dict[str, Any], lines: list[dict[str, Any]]) -> bool:
    if any(getattr(order, name) != value for name, value in header.items()):
        return False
    stored = [
        {"line_no": x.line_no, "product_id": x.product_id, "sku": x.sku, "quantity": x.quantity,
         "unit_price": x.unit_price, "amount": x.amount}
        for x in order.lines
    ]  # fmt: skip
    return stored == lines


def _products(session: Session, skus: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunked(sorted(skus), 5000):
        found.update(
            (sku, pid) for pid, sku in session.execute(select(Product.id, Product.sku).where(Product.sku.in_(chunk)))
        )
    return found


def _product_ids(session: Session, ids: set[Any]) -> set[int]:
    """The given product ids that exist (a line of an export names its product by id when it has no SKU)."""
    wanted = [i for i in ids if isinstance(i, int)]
    found: set[int] = set()
    for chunk in chunked(sorted(wanted), 5000):
        found.update(session.scalars(select(Product.id).where(Product.id.in_(chunk))))
    return found
