"""Orders and their line items."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.catalog.models import Product
from kizuna.config import get_settings
from kizuna.customers.service import resolve_id
from kizuna.db import check_version
from kizuna.errors import Conflict, NotFound, ValidationError
from kizuna.orders.models import Order, OrderLine
from kizuna.orders.schemas import OrderCreate, OrderUpdate
from kizuna.outbox.service import emit


def get_order(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def recent_orders(session: Session, customer_id: int, *, limit: int) -> list[Order]:
    """The customer's newest ``limit`` orders (with their lines), newest first."""
    query = select(Order).where(Order.customer_id == customer_id).order_by(Order.ordered_at.desc(), Order.id.desc())
    return list(session.scalars(query.limit(limit)))


@dataclass
class OrderTotals:
    """A customer's completed orders: how many, and their total per currency."""

    count: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)


def completed_totals(session: Session, customer_ids: set[int]) -> dict[int, OrderTotals]:
    """Spend per customer and currency by the one rule of ``orders.spend`` (completed, no refund rows), one query."""
    from kizuna.orders.spend import counts_as_spend

    totals = {customer_id: OrderTotals() for customer_id in customer_ids}
    if not customer_ids:
        return totals
    rows = session.execute(
        select(Order.customer_id, Order.currency, func.count(), func.sum(Order.total_amount))
        .where(Order.customer_id.in_(customer_ids), counts_as_spend())
        .group_by(Order.customer_id, Order.currency)
        .order_by(Order.customer_id, Order.currency)
    )
    for customer_id, currency, count, amount in rows:
        totals[customer_id].count += count
        totals[customer_id].amounts[currency] = Decimal(str(amount or 0))
    return totals


def create_order(session: Session, *, actor: Actor, data: OrderCreate) -> Order:
    require(actor, "orders:write")
    try:
        customer_id = resolve_id(session, data.customer_id)
    except NotFound as exc:
        raise ValidationError(f"customer {data.customer_id} does not exist", field="customer_id") from exc
    if data.external_id and session.scalar(select(Order.id).where(Order.external_id == data.external_id)):
        raise Conflict(f"an order with external_id {data.external_id} already exists", field="external_id")
    skus = {line.sku for line in data.lines if line.sku}
    ids = {line.product_id for line in data.lines if line.product_id}
    by_sku = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(skus)))} if skus else {}
    by_id = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))} if ids else {}
    order = Order(
        external_id=data.external_id,
        customer_id=customer_id,
        ordered_at=data.ordered_at,
        status=data.status,
        channel=data.channel,
        store=data.store,
        currency=data.currency or get_settings().default_currency,
        attributes=data.attributes or {},
    )
    total = Decimal(0)
    for number, line in enumerate(data.lines, start=1):
        product = by_id.get(line.product_id) if line.product_id else by_sku.get(line.sku or "")
        if product is None:
            ref = f"product_id {line.product_id}" if line.product_id else f"sku {line.sku}"
            raise ValidationError(f"line {number}: unknown {ref}", field=f"lines.{number - 1}")
        amount = line.line_amount
        total += amount
        order.lines.append(
            OrderLine(
                customer_id=customer_id,
                line_no=number,
                product_id=product.id,
                sku=product.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=amount,
            )
        )
    order.total_amount = data.total_amount if data.total_amount is not None else total
    session.add(order)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="order.create",
        entity_type="order",
        entity_id=order.id,
        customer_id=customer_id,
        summary=f"{order.currency} {order.total_amount}",
    )
    if order.status == "completed":
        emit(
            session,
            "order.completed",
            {"order_id": order.id, "customer_id": customer_id},
            customer_id=customer_id,
            origin=actor.origin,
            occurred_at=order.ordered_at,
        )
    return order


def update_order(
    session: Session, *, actor: Actor, order_id: int, data: OrderUpdate, expected_version: int | None
) -> Order:
    require(actor, "orders:write")
    order = get_order(session, order_id)
    check_version(order.version, if_match=expected_version, body=data.version)
    changes = data.model_dump(exclude={"version"}, exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        raise ValidationError("status cannot be empty", field="status")
    diff = audit.apply_changes(session, order, changes, actor=actor, entity_type="order", customer_id=order.customer_id)
    if diff:
        # Any change may move the customer's spend (a cancellation) and so their segments and metrics.
        emit(
            session,
            "order.updated",
            {"order_id": order.id, "customer_id": order.customer_id, "fields": sorted(diff)},
            customer_id=order.customer_id,
            origin=actor.origin,
        )
    if "status" in diff and order.status == "completed":
        emit(
            session,
            "order.completed",
            {"order_id": order.id, "customer_id": order.customer_id},
            customer_id=order.customer_id,
            origin=actor.origin,
            occurred_at=order.ordered_at,
        )
    return order


def delete_order(session: Session, *, actor: Actor, order_id: int, expected_version: int | None) -> None:
    require(actor, "orders:delete")
    order = get_order(session, order_id)
    check_version(order.version, if_match=expected_version)
    audit.record(
        session,
        actor=actor,
        action="order.delete",
        entity_type="order",
        entity_id=order.id,
        customer_id=order.customer_id,
    )
    emit(
        session,
        "order.deleted",
        {"order_id": order.id, "customer_id": order.customer_id},
        customer_id=order.customer_id,
        origin=actor.origin,
    )
    session.delete(order)
