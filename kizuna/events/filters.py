from __future__ import annotations

from kizuna.events.models import Event
from kizuna.listing import ORDERED, TEXT, Filter, FilterSet

EVENT_FILTERS = FilterSet(
    model=Event,
    fields={
        "id": Filter(Event.id, "int", ORDERED),
        "external_id": Filter(Event.external_id, "str", TEXT),
        "customer_id": Filter(Event.customer_id, "int", ("eq", "in", "isnull")),
        "anonymous_id": Filter(Event.anonymous_id, "str", ("eq", "in")),
        "type": Filter(Event.type, "str", TEXT),
        "channel": Filter(Event.channel, "str", ("eq", "ne", "in")),
        "source": Filter(Event.source, "str", TEXT),
        "occurred_at": Filter(Event.occurred_at, "datetime", ORDERED),
    },
    sorts={"id": Event.id, "occurred_at": Event.occurred_at},
    default_sort="-occurred_at",
)
