from __future__ import annotations

from kizuna.auth.models import AuditEntry
from kizuna.listing import ORDERED, TEXT, Filter, FilterSet

AUDIT_FILTERS = FilterSet(
    model=AuditEntry,
    fields={
        "id": Filter(AuditEntry.id, "int", ORDERED),
        "at": Filter(AuditEntry.at, "datetime", ORDERED),
        "actor": Filter(AuditEntry.actor, "str", TEXT),
        "action": Filter(AuditEntry.action, "str", TEXT),
        "entity_type": Filter(AuditEntry.entity_type, "str", ("eq", "in")),
        "entity_id": Filter(AuditEntry.entity_id, "str", ("eq",)),
        "customer_id": Filter(AuditEntry.customer_id, "int", ("eq", "in")),
    },
    sorts={"id": AuditEntry.id},
    default_sort="-id",
)
