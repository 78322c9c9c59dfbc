"""How a row of another import (orders, events) names its customer, and which customer that is today.

A column called ``customer_id`` (or 顧客ID, 会員ID ...) holds the source system's id of the customer, as in
a customers file from the same system; Kizuna's own id is read only from a column explicitly named
``kizuna_customer_id``, which is also what exports write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.customers.models import Customer, CustomerIdentity, in_index_of
from kizuna.customers.service import resolve_id
from kizuna.errors import KizunaError
from kizuna.imports.importer import RowRejected, chunked, field_error
from kizuna.imports.report import Reason
from kizuna.imports.values import parse_int
from kizuna.normalize import normalize_email, normalize_text

# In the order a row's references are tried: Kizuna's own id is exact, the others go through identities.
REFERENCE_ALIASES: dict[str, tuple[str, ...]] = {
    "kizuna_customer_id": ("kizuna id",),
    "customer_external_id": (
        "顧客ID",
        "顧客番号",
        "顧客コード",
        "会員ID",
        "会員番号",
        "customer id",
        "member id",
    ),
    "customer_email": ("メールアドレス", "メール", "email", "e-mail", "customer email"),
}
CUSTOMER_REFS = tuple(REFERENCE_ALIASES)
# Reference kind -> the identity kind it is looked up as.
_IDENTITY_KINDS = {"customer_external_id": "external_id", "customer_email": "email"}


def parse_customer_ref(raw: dict[str, Any]) -> tuple[str, Any] | None:
    """The customer a row names, as (reference kind, normalised value), e.g. ("customer_email", "a@example.jp")."""
    for name in CUSTOMER_REFS:
        if name in raw:
            try:
                if name == "customer_email":
                    return name, normalize_email(raw[name], field=name)
                if name == "kizuna_customer_id":
                    return name, parse_int(raw[name])
                return name, normalize_text(raw[name])
            except (KizunaError, ValueError) as exc:
                raise RowRejected([field_error(name, exc)]) from None
    return None


def describe_missing(ref: tuple[str, Any]) -> tuple[str, Reason]:
    """(field, reason) for a reference that names no customer."""
    kind, value = ref
    what = "Kizuna id" if kind == "kizuna_customer_id" else kind.removeprefix("customer_")
    return kind, Reason(f"{kind}: no customer with {what} '{value}'", "error.import_no_such_customer", {"value": value})


def resolve_customers(session: Session, refs: set[tuple[str, Any]]) -> dict[tuple[str, Any], int]:
    """(reference kind, value) -> the customer id it names today (following merges)."""
    found: dict[tuple[str, Any], int] = {}
    for ref_kind, identity_kind in _IDENTITY_KINDS.items():
        values = [v for k, v in refs if k == ref_kind]
        for chunk in chunked(values, 5000):
            query = select(CustomerIdentity.value, CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == identity_kind,
                CustomerIdentity.value.in_(chunk),
                in_index_of(identity_kind, CustomerIdentity.kind),
            )
            found.update(((ref_kind, value), cid) for value, cid in session.execute(query))
    ids = [v for k, v in refs if k == "kizuna_customer_id"]
    for chunk in chunked(ids, 5000):
        for cid, merged_into in session.execute(
            select(Customer.id, Customer.merged_into_id).where(Customer.id.in_(chunk))
        ):
            found[("kizuna_customer_id", cid)] = resolve_id(session, cid) if merged_into else cid
    return found
