"""The customer and company filters: one definition for the API list, the UI list, exports and segments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select

from kizuna.customers import consent
from kizuna.customers.models import Company, Customer, Tag, customer_tags
from kizuna.listing import ORDERED, TEXT, DefaultScope, Filter, FilterSet, _escape_like
from kizuna.normalize import normalize_email, normalize_kana, normalize_phone, normalize_text


def _search(raw: str) -> ColumnElement[bool]:
    text = normalize_text(raw) or ""
    like = f"%{_escape_like(text)}%"
    kana = f"%{_escape_like(normalize_kana(text) or '')}%"
    digits = "".join(ch for ch in text if ch.isdigit())
    clauses = [
        Customer.full_name.ilike(like, escape="\\"),
        Customer.full_name_kana.ilike(kana, escape="\\"),
        Customer.email.ilike(like.casefold(), escape="\\"),
        Customer.external_id == text,
    ]
    if len(digits) >= 4:
        clauses.append(Customer.phone.like(f"%{digits.lstrip('0')}%"))
    return or_(*clauses)


def _tag(op: str, value: Any) -> ColumnElement[bool]:
    names = value if isinstance(value, list) else [value]
    has = exists(
        select(customer_tags.c.customer_id)
        .join(Tag, Tag.id == customer_tags.c.tag_id)
        .where(customer_tags.c.customer_id == Customer.id, Tag.name.in_(names))
    )
    return ~has if op == "ne" else has


def _consent(channel: str):  # noqa: ANN202 - returns a clause builder
    def build(op: str, value: Any) -> ColumnElement[bool]:
        wanted = value if op == "eq" else not value
        granted = consent.granted(Customer.id, channel=channel, purpose=consent.MARKETING)
        return granted if wanted else ~granted

    return build


CUSTOMER_FILTERS = FilterSet(
    model=Customer,
    fields={
        "id": Filter(Customer.id, "int", ORDERED),
        "external_id": Filter(Customer.external_id, "str", TEXT),
        "email": Filter(Customer.email, "str", TEXT, normalize=normalize_email),
        "phone": Filter(Customer.phone, "str", TEXT, normalize=normalize_phone),
        "full_name": Filter(Customer.full_name, "str", TEXT),
        "full_name_kana": Filter(Customer.full_name_kana, "str", TEXT),
        "gender": Filter(Customer.gender, "str", TEXT),
        "birth_date": Filter(Customer.birth_date, "date", ORDERED),
        "prefecture": Filter(Customer.prefecture, "str", TEXT),
        "city": Filter(Customer.city, "str", TEXT),
        "country": Filter(Customer.country, "str", TEXT),
        "company_id": Filter(Customer.company_id, "int", ("eq", "ne", "in", "isnull")),
        "owner_id": Filter(Customer.owner_id, "int", ("eq", "ne", "in", "isnull")),
        "lifecycle_stage": Filter(Customer.lifecycle_stage, "str", TEXT),
        "locale": Filter(Customer.locale, "str", ("eq", "ne", "in")),
        "source": Filter(Customer.source, "str", TEXT),
        "status": Filter(Customer.status, "str", ("eq", "ne", "in")),
        "created_at": Filter(Customer.created_at, "datetime", ORDERED),
        "updated_at": Filter(Customer.updated_at, "datetime", ORDERED),
        "tag": Filter(kind="str", ops=("eq", "ne", "in"), build=_tag),
        "email_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("email")),
        "line_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("line")),
        "sms_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("sms")),
    },
    sorts={
        "id": Customer.id,
        "full_name": Customer.full_name,
        "created_at": Customer.created_at,
        "updated_at": Customer.updated_at,
    },
    default_sort="-id",
    search=_search,
    # Merged records stay as rows so their ids resolve; lists show the people, unless a status is asked for.
    default_scope=DefaultScope("status", "active"),
)


def _company_search(raw: str) -> ColumnElement[bool]:
    like = f"%{_escape_like(normalize_text(raw) or '')}%"
    return or_(
        Company.name.ilike(like, escape="\\"),
        Company.name_kana.ilike(like, escape="\\"),
        Company.domain.ilike(like, escape="\\"),
    )


COMPANY_FILTERS = FilterSet(
    model=Company,
    fields={
        "id": Filter(Company.id, "int", ORDERED),
        "external_id": Filter(Company.external_id, "str", TEXT),
        "name": Filter(Company.name, "str", TEXT),
        "domain": Filter(Company.domain, "str", TEXT),
        "industry": Filter(Company.industry, "str", TEXT),
        "prefecture": Filter(Company.prefecture, "str", TEXT),
        "owner_id": Filter(Company.owner_id, "int", ("eq", "ne", "in", "isnull")),
        "created_at": Filter(Company.created_at, "datetime", ORDERED),
    },
    sorts={"id": Company.id, "name": Company.name, "created_at": Company.created_at},
    default_sort="name",
    search=_company_search,
)
