"""Importing orders: one CSV row per line item, grouped into orders by order id; an order lands whole or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.catalog.models import Product
from kizuna.config import get_settings
from kizuna.customers.models import Customer, CustomerIdentity
from kizuna.customers.service import resolve_id
from kizuna.db import utcnow
from kizuna.errors import KizunaError
from kizuna.imports.importer import ImportOptions, RowRejected, WriteContext, chunked, errors_from, field_error
from kizuna.imports.reader import Columns, Record
from kizuna.imports.values import nfkc, parse_datetime, parse_decimal, parse_int
from kizuna.normalize import normalize_email, normalize_text
from kizuna.orders.models import Order, OrderLine
from kizuna.orders.schemas import OrderCreate

ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("注文ID", "注文番号", "受注ID", "受注番号", "order id", "order no", "order number"),
    "customer_external_id": ("顧客ID", "顧客番号", "顧客コード", "会員ID", "会員番号", "customer id", "member id"),
    "customer_email": ("メールアドレス", "メール", "email", "e-mail", "customer email"),
    "customer_id": ("kizuna customer id", "kizuna id"),
    "ordered_at": ("注文日時", "注文日", "購入日", "購入日時", "受注日", "受注日時", "order date", "ordered", "date"),
    "sku": ("商品コード", "SKU", "品番", "商品ID", "商品番号", "product code", "item code"),
    "quantity": ("数量", "個数", "qty"),
    "unit_price": ("単価", "価格", "販売価格", "price", "unit price"),
    "amount": ("小計", "明細金額", "line amount", "line total", "subtotal"),
    "total_amount": ("金額", "合計", "合計金額", "注文金額", "total", "order total"),
    "currency": ("通貨",),
    "status": ("ステータス", "状態", "注文ステータス", "order status"),
    "channel": ("チャネル", "チャンネル", "販売チャネル", "購入経路"),
    "store": ("店舗", "店舗名", "店舗コード", "shop"),
}
CUSTOMER_REFS = ("customer_external_id", "customer_email", "customer_id")
COLUMNS = Columns(
    aliases=ALIASES,
    required=[("external_id",), CUSTOMER_REFS, ("ordered_at",), ("sku",), ("unit_price", "amount")],
)
_STATUS = {
    "完了": "completed",
    "発送済": "completed",
    "発送済み": "completed",
    "キャンセル": "cancelled",
    "取消": "cancelled",
    "canceled": "cancelled",
    "返品": "returned",
    "保留": "pending",
    "処理中": "pending",
    "未発送": "pending",
}
# Order-level values every line of one order must agree on.
HEADER_FIELDS = ("customer", "ordered_at", "status", "channel", "store", "currency", "total_amount")


@dataclass
class OrderLineRow:
    line: int
    order_id: str
    header: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class OrderRows:
    order_id: str
    rows: list[OrderLineRow]


class OrderImporter:
    kind = "orders"
    columns = COLUMNS
    parallel = False

    def parse(self, record: Record, options: ImportOptions) -> OrderLineRow:
        raw = record.values
        order_id = normalize_text(raw.get("external_id"))
        if not order_id:
            raise RowRejected([("external_id", "external_id: the order id is empty")])
        row = OrderLineRow(record.line, order_id)
        _parse_into(row, raw)
        return row

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
        customers = resolve_customers(session, {o.rows[0].header.get("customer") for o in orders} - {None})
        products = _products(session, {r.item["sku"] for o in orders for r in o.rows if "sku" in r.item})
        stored: dict[str, Order] = {}
        for chunk in chunked([o.order_id for o in orders], 5000):
            stored.update(
                (o.external_id, o) for o in session.scalars(select(Order).where(Order.external_id.in_(chunk)))
            )
        default_currency = get_settings().default_currency
        for order in orders:
            try:
                data = _order_data(session, order, customers, products, default_currency, ctx)
            except RowRejected as exc:
                _reject_order(ctx, order, exc.errors)
                continue
            lines = [
                {"line_no": i, "product_id": products.get(item.sku), "sku": item.sku, "quantity": item.quantity,
                 "unit_price": item.unit_price, "amount": item.amount if item.amount is not None else
                 item.unit_price * item.quantity}
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
                session.add(
                    Order(
                        external_id=order.order_id,
                        attributes={},
                        lines=[OrderLine(customer_id=data.customer_id, **x) for x in lines],
                        **header,
                    )
                )
                report.inserted += 1
            elif _same(existing, header, lines):
                report.unchanged += 1
            else:
                for name, value in header.items():
                    if getattr(existing, name) != value:
                        setattr(existing, name, value)
                existing.lines = [OrderLine(customer_id=data.customer_id, **x) for x in lines]
                existing.updated_at = utcnow()  # the order row changes (and its version bumps) even if only lines did
                report.updated += 1
        session.flush()


IMPORTER = OrderImporter()


def parse_customer_ref(raw: dict[str, Any]) -> tuple[str, Any] | None:
    """The customer a row names, as (reference kind, normalised value), e.g. ("customer_email", "a@example.jp")."""
    for name in CUSTOMER_REFS:
        if name in raw:
            try:
                if name == "customer_email":
                    return name, normalize_email(raw[name], field=name)
                if name == "customer_id":
                    return name, parse_int(raw[name])
                return name, normalize_text(raw[name])
            except (KizunaError, ValueError) as exc:
                raise RowRejected([field_error(name, getattr(exc, "message", exc))]) from None
    return None


def _parse_into(row: OrderLineRow, raw: dict[str, Any]) -> None:
    try:
        customer = parse_customer_ref(raw)
        if customer is None:
            row.errors.append(("customer_external_id", "customer_external_id: the row names no customer"))
        else:
            row.header["customer"] = customer
    except RowRejected as exc:
        row.errors.extend(exc.errors)
    parsers = {
        "ordered_at": parse_datetime,
        "total_amount": parse_decimal,
        "quantity": parse_int,
        "unit_price": parse_decimal,
        "amount": parse_decimal,
    }
    for name in ("ordered_at", "status", "channel", "store", "currency", "total_amount"):
        if name in raw:
            try:
                value = parsers[name](raw[name]) if name in parsers else nfkc(raw[name])
            except ValueError as exc:
                row.errors.append(field_error(name, exc))
                continue
            row.header[name] = _STATUS.get(value, value.casefold()) if name == "status" else value
    for name in ("sku", "quantity", "unit_price", "amount"):
        if name in raw:
            try:
                row.item[name] = parsers[name](raw[name]) if name in parsers else nfkc(raw[name])
            except ValueError as exc:
                row.errors.append(field_error(name, exc))
    if "ordered_at" not in raw:
        row.errors.append(("ordered_at", "ordered_at: empty"))
    if "sku" not in raw:
        row.errors.append(("sku", "sku: empty"))
    item = row.item
    if "unit_price" not in item and "amount" in item:
        # The line keeps the given amount; the derived unit price is rounded to the cent.
        unit = item["amount"] / item["quantity"] if item.get("quantity") else item["amount"]
        item["unit_price"] = unit.quantize(Decimal("0.01"))
    if "unit_price" not in item and not any(f in ("unit_price", "amount") for f, _ in row.errors):
        row.errors.append(("unit_price", "unit_price: empty (give unit_price or amount)"))


def _order_data(
    session: Session,
    order: OrderRows,
    customers: dict[tuple[str, Any], int],
    products: dict[str, int],
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
                raise RowRejected(
                    [(name, f"{name}: lines of order {order.order_id} disagree ({header[name]} / {value})")]
                )
            header[name] = value
    ref = header.pop("customer")
    customer_id = customers.get(ref)
    if customer_id is None:
        raise RowRejected([(ref[0], f"{ref[0]}: no customer with {ref[0].removeprefix('customer_')} '{ref[1]}'")])
    unknown = sorted({r.item["sku"] for r in order.rows} - set(products))
    if unknown and not ctx.options.create_products:
        raise RowRejected(
            [
                ("sku", f"sku: unknown product '{sku}' (import products first or use --create-products)")
                for sku in unknown
            ]
        )
    try:
        data = OrderCreate(customer_id=customer_id, lines=[r.item for r in order.rows], **header)
    except pydantic.ValidationError as exc:
        raise RowRejected(errors_from(exc)) from None
    for sku in unknown:
        # A placeholder product named by its SKU; a later products import fills in the rest.
        price = next(line.unit_price for line in data.lines if line.sku == sku)
        product = Product(sku=sku, name=sku, price=price, currency=data.currency or default_currency, attributes={})
        session.add(product)
        session.flush()
        products[sku] = product.id
        ctx.report.note("products created")
    return data


def _reject_order(ctx: WriteContext, order: OrderRows, errors: list[tuple[str, str]]) -> None:
    """Every line of the order is reported: the ones at fault with their reason, the rest as rejected with it."""
    faulty = {r.line for r in order.rows if r.errors}
    summary = "; ".join(reason for _, reason in errors)
    for row in order.rows:
        if row.errors:
            for name, reason in row.errors:
                ctx.report.reject(row.line, name, f"{reason} (order {order.order_id} rejected)")
        else:
            where = f" (fault on line {', '.join(map(str, sorted(faulty)))})" if faulty else ""
            field_name = errors[0][0] if errors else "row"
            ctx.report.reject(row.line, field_name, f"order {order.order_id} rejected: {summary}{where}")


def _same(order: Order, header: dict[str, Any], lines: list[dict[str, Any]]) -> bool:
    if any(getattr(order, name) != value for name, value in header.items()):
        return False
    stored = [
        {"line_no": x.line_no, "product_id": x.product_id, "sku": x.sku, "quantity": x.quantity,
         "unit_price": x.unit_price, "amount": x.amount}
        for x in order.lines
    ]  # fmt: skip
    return stored == lines


def resolve_customers(session: Session, refs: set[tuple[str, Any]]) -> dict[tuple[str, Any], int]:
    """(reference kind, value) -> the customer id it names today (following merges)."""
    found: dict[tuple[str, Any], int] = {}
    kinds = {"customer_external_id": "external_id", "customer_email": "email"}
    for ref_kind, identity_kind in kinds.items():
        values = [v for k, v in refs if k == ref_kind]
        for chunk in chunked(values, 5000):
            query = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == identity_kind, CustomerIdentity.value.in_(chunk)
            )
            found.update(((ref_kind, value), cid) for value, cid in session.execute(query))
    ids = [v for k, v in refs if k == "customer_id"]
    for chunk in chunked(ids, 5000):
        for cid, merged_into in session.execute(
            select(Customer.id, Customer.merged_into_id).where(Customer.id.in_(chunk))
        ):
            found[("customer_id", cid)] = resolve_id(session, cid) if merged_into else cid
    return found


def _products(session: Session, skus: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunked(sorted(skus), 5000):
        found.update(
            (sku, pid) for pid, sku in session.execute(select(Product.id, Product.sku).where(Product.sku.in_(chunk)))
        )
    return found
