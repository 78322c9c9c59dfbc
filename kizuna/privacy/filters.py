from __future__ import annotations

from kizuna.listing import ORDERED, TEXT, Filter, FilterSet
from kizuna.privacy.models import ThirdPartyProvision as P

PROVISION_FILTERS = FilterSet(
    model=P,
    fields={
        "id": Filter(P.id, "int", ORDERED),
        "customer_id": Filter(P.customer_id, "int", ("eq", "in")),
        "recipient": Filter(P.recipient, "str", TEXT),
        "purpose": Filter(P.purpose, "str", ("eq", "ne", "in")),
        "via": Filter(P.via, "str", ("eq", "ne", "in")),
        "reference": Filter(P.reference, "str", TEXT),
        "provided_by": Filter(P.provided_by, "str", TEXT),
        "provided_at": Filter(P.provided_at, "datetime", ORDERED),
    },
    sorts={"id": P.id, "provided_at": P.provided_at},
    default_sort="-provided_at",
)
