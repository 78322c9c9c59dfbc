from __future__ import annotations

import datetime as dt

from kizuna.schemas import Output


class ProvisionRead(Output):
    id: int
    customer_id: int
    recipient: str
    fields: list[str]
    purpose: str
    provided_at: dt.datetime
    provided_by: str
    via: str
    reference: str | None = None
