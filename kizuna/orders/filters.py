from __future__ import annotations

from kizuna.listing import ORDERED, TEXT, Filter, FilterSet
from kizuna.orders.models import Order

ORDER_FILTERS = FilterSet(
    model=Order,
    fields={
        "id": Filter(Order.id, "int", ORDERED),
        "external_id": Filter(Order.external_id, "str", TEXT),
        "customer_id": Filter(Order.customer_id, "int", ("eq", "in")),
        "ordered_at": Filter(Order.ordered_at, "datetime", ORDERED),
        "status": Filter(Order.status, "str", ("eq", "ne", "in")),
        "channel": Filter(Order.channel, "str", TEXT),
        "store": Filter(Order.store, "str", TEXT),
        "currency": Filter(Order.currency, "str", ("eq", "in")),
        "total_amount": Filter(Order.total_amount, "decimal", ORDERED),
        "created_at": Filter(Order.created_at, "datetime", ORDERED),
    },
    sorts={"id": Order.id, "ordered_at": Order.ordered_at, "total_amount": Order.total_amount},
    default_sort="-ordered_at",
)
