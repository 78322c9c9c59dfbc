"""STUB, replaced at merge: the APPI third-party provision record is built on another branch.

The webhooks branch calls ``record_provisions`` when a delivery succeeds (``kizuna/webhooks/delivery.py``);
the real module records one row per customer and keeps it three years. This stub records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session


def record_provisions(
    session: Session,
    *,
    customer_ids: Iterable[int],
    recipient: str,
    fields: Iterable[str],
    via: str,
    purpose: str,
    actor: Any,
    reference: str | None = None,
) -> int:
    """Record that ``fields`` of ``customer_ids`` went to ``recipient``; how many rows were written (stub: 0)."""
    return 0
