"""The customer and company filters: one definition for the API list, the UI list, exports and segments."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, exists, func, literal, or_, select

from kizuna.customers import consent
from kizuna.customers.models import Company, Customer, Tag, customer_tags
from kizuna.fields.filters import custom_filters
from kizuna.listing import ORDERED, TEXT, DefaultScope, Filter, FilterSet, SearchClause, _escape_like
from kizuna.normalize import normalize_email, normalize_kana, normalize_phone, normalize_text

# The largest code point: every text that starts with ``p`` sorts at or after ``p`` and before ``p + _LAST``.
_LAST = "\U0010ffff"
_MAX_ID = 2**31 - 1  # an INTEGER primary key on PostgreSQL: a larger number compared with it is an error


def _starts_with(column: Any, prefix: Any) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as an index range (``LIKE 'x%'`` uses no index on either backend)."""
    return and_(column >= prefix, column < prefix + _LAST)


def _search_clauses(raw: str) -> list[SearchClause]:
    """The list's search box: the start of the name or its reading (spaces ignored), of the e-mail or of the
    phone number, or the external id; one clause per index, any of which matches.

    Every clause is an index range, so that a search answers from indexes on a million customers, a search
    that matches nobody included (a "contains" match reads every row). The name is matched from its start as
    shown, without spaces: 山田充, 山田 充 and 山田 all find 山田 充, ヤマダミツル and やまだ find its reading.
    ``kizuna.listing`` decides how to combine them (see ``FilterSet.search_clauses``).
    """
    text = normalize_text(raw) or ""
    key = text.replace(" ", "")
    clauses = [SearchClause(Customer.external_id, lambda c: c == text)]
    if key:
        # The stored key is lower-cased by the database (``NAME_KEY_SQL``); so is the typed text, by the same
        # function, so both backends agree with themselves on what lower-case is.
        lowered = func.lower(literal(key, String()))
        clauses.append(SearchClause(Customer.name_key, lambda c: _starts_with(c, lowered)))
        kana = (normalize_kana(key) or "").replace(" ", "")
        # name_sort holds '1' + the reading (see Customer.name_sort).
        clauses.append(SearchClause(Customer.name_sort, lambda c: _starts_with(c, "1" + kana)))
        clauses.append(SearchClause(Customer.email, lambda c: _starts_with(c, key.casefold())))
    if re.fullmatch(r"#?[1-9]\d{0,9}", text) and int(text.lstrip("#")) <= _MAX_ID:
        # The record number the UI shows everywhere (#500 on the 360 page, the duplicates and the audit log);
        # a phone number typed with its leading 0 is not one. ``tested()`` hands the match a text expression
        # of the column, hence the number as text there.
        number = int(text.lstrip("#"))
        clauses.append(SearchClause(Customer.id, lambda c: c == (number if c is Customer.id else str(number))))
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 4:
        # Phones are stored in E.164: a national number typed with its leading 0 starts after +81.
        if text.startswith("+"):
            clauses.append(SearchClause(Customer.phone, lambda c: _starts_with(c, "+" + digits)))
        elif digits.startswith("0"):
            clauses.append(SearchClause(Customer.phone, lambda c: _starts_with(c, "+81" + digits[1:])))
    return clauses


def _tag(op: str, value: Any) -> ColumnElement[bool]:
    names = value if isinstance(value, list) else [value]
    has = exists(
        select(customer_tags.c.customer_id)
        .join(Tag, Tag.id == customer_tags.c.tag_id)
        .where(customer_tags.c.customer_id == Customer.id, Tag.name.in_(names))
    )
    return ~has if op == "ne" else has


def _tagged(_op: str, value: Any) -> Select[Any]:
    """The ids of the customers with any of the tags, from the tag's index (for counts; see Filter.ids)."""
    names = value if isinstance(value, list) else [value]
    return select(customer_tags.c.customer_id).join(Tag, Tag.id == customer_tags.c.tag_id).where(Tag.name.in_(names))


def _consent(channel: str):  # noqa: ANN202 - returns a clause builder
    def build(op: str, value: Any) -> ColumnElement[bool]:
        wanted = value if op == "eq" else not value
        granted = consent.granted(Customer.id, channel=channel, purpose=consent.MARKETING)
        return granted if wanted else ~granted

    return build


def _metric(column: Any):  # noqa: ANN202 - returns a clause builder
    """A filter on a ``customer_metrics`` column. A customer without a metrics row (no counted order yet) has
    every metric empty: ``ne`` and ``isnull=true`` include them, the other operators do not."""
    from kizuna.analytics.models import CustomerMetrics
    from kizuna.listing import _compare

    def row(test: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(select(CustomerMetrics.customer_id).where(CustomerMetrics.customer_id == Customer.id, test))

    def build(op: str, value: Any) -> ColumnElement[bool]:
        if op == "ne":
            return ~row(column == value)
        if op == "isnull":
            return ~row(column.is_not(None)) if value else row(column.is_not(None))
        return row(_compare(column, op, value))

    return build


def _metric_ids(column: Any):  # noqa: ANN202 - returns an id-set builder
    from kizuna.analytics.models import CustomerMetrics

    def ids(op: str, value: Any) -> Select[Any]:
        test = column.in_(value) if op == "in" else column == value
        return select(CustomerMetrics.customer_id).where(test)

    return ids


def _metric_filter(name: str, kind: str, ops: tuple[str, ...], normalize: Any = None) -> Filter:
    from kizuna.analytics.models import CustomerMetrics

    column = getattr(CustomerMetrics, name)
    # Float columns take floats: SQLite's driver cannot bind a Decimal.
    return Filter(kind=kind, ops=ops, build=_metric(column), ids=_metric_ids(column), normalize=normalize)


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
        "tag": Filter(kind="str", ops=("eq", "ne", "in"), build=_tag, ids=_tagged),
        "email_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("email")),
        "line_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("line")),
        "sms_consent": Filter(kind="bool", ops=("eq", "ne"), build=_consent("sms")),
        # The persisted per-customer metrics (customer_metrics, filled by ``kizuna analytics refresh``): the
        # same numbers the 360 page and segments read.
        "rfm_segment": _metric_filter("rfm_segment", "str", ("eq", "ne", "in", "isnull")),
        "decile": _metric_filter("decile", "int", ORDERED),
        "clv": _metric_filter("clv", "decimal", ORDERED),
        "churn_risk": _metric_filter("churn_risk", "decimal", ORDERED, normalize=float),
        "p_alive": _metric_filter("p_alive", "decimal", ORDERED, normalize=float),
        "order_count": _metric_filter("order_count", "int", ORDERED),
        "total_spend": _metric_filter("total_spend", "decimal", ORDERED),
        "last_order_at": _metric_filter("last_order_at", "datetime", ORDERED),
        "top_category": _metric_filter("top_category", "str", ("eq", "ne", "in", "isnull")),
    },
    sorts={
        "id": Customer.id,
        # 五十音順 by the reading; people without one after, by name (see Customer.name_sort).
        "full_name": Customer.name_sort,
        "created_at": Customer.created_at,
        "updated_at": Customer.updated_at,
    },
    default_sort="-id",
    search_clauses=_search_clauses,
    custom=custom_filters("customer", Customer.attributes),
    # Merged records stay as rows so their ids resolve; lists show the people, unless a status is asked for.
    default_scope=DefaultScope("status", "active"),
)


# The customer list's form (UI list, saved views, exports): each field mapped to a CUSTOMER_FILTERS parameter.
# ``mine`` is the viewer's own customers, resolved per viewer, so a saved view "mine" follows whoever applies it.
CUSTOMER_FORM_FIELDS = {
    "q": "q",
    "tag": "tag",
    "prefecture": "prefecture__contains",
    "lifecycle_stage": "lifecycle_stage",
    "email_consent": "email_consent",
    "company_id": "company_id",
    "mine": "owner_id",
    "status": "status",
}


def customer_form_params(form: dict[str, str], *, user_id: int | None) -> dict[str, Any]:
    """The CUSTOMER_FILTERS parameters for a list form (the filter set's default scope handles ``status``)."""
    params: dict[str, Any] = {}
    for name, value in form.items():
        if name.startswith("attributes.") and value:
            params[name] = value  # a custom field's filter (``attributes.<key>[__op]``), typed by the filter set
            continue
        if name not in CUSTOMER_FORM_FIELDS or not value:
            continue
        if name == "mine":
            # Someone without a user (the system) owns nothing: the filter then matches no customer.
            params["owner_id"] = str(user_id) if user_id is not None else "0"
            continue
        params[CUSTOMER_FORM_FIELDS[name]] = value
    return params


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
    custom=custom_filters("company", Company.attributes),
)
