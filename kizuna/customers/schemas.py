from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from kizuna.privacy.schemas import ProvisionRead
from kizuna.schemas import (
    Email,
    FreeJSON,
    FreeText,
    Input,
    Kana,
    MoneyOut,
    OptionalFreeText,
    Output,
    Phone,
    StoredJSON,
    Text,
    UTCTime,
)

Channel = Literal["email", "sms", "line", "phone", "post", "push"]
ConsentStatus = Literal["granted", "withdrawn"]
Gender = Literal["female", "male", "other", "unknown"]
Stage = Literal["lead", "prospect", "customer", "former"]


class _CustomerFields(Input):
    external_id: Text | None = Field(default=None, max_length=128)
    email: Email | None = None
    phone: Phone | None = None
    family_name: Text | None = Field(default=None, max_length=100)
    given_name: Text | None = Field(default=None, max_length=100)
    family_name_kana: Kana | None = Field(default=None, max_length=100)
    given_name_kana: Kana | None = Field(default=None, max_length=100)
    birth_date: dt.date | None = None
    gender: Gender | None = None
    postal_code: Text | None = Field(default=None, max_length=16)
    prefecture: Text | None = Field(default=None, max_length=100)
    city: Text | None = Field(default=None, max_length=200)
    address_line: Text | None = Field(default=None, max_length=300)
    country: Text | None = Field(default=None, min_length=2, max_length=2)
    company_id: int | None = None
    owner_id: int | None = None
    lifecycle_stage: Stage | None = None
    timezone: Text | None = Field(default=None, max_length=64)
    locale: Literal["ja", "en"] | None = None
    source: Text | None = Field(default=None, max_length=64)
    attributes: FreeJSON | None = None
    tags: list[Text] | None = None

    @field_validator("tags")
    @classmethod
    def _few_tags(cls, value: list[str] | None) -> list[str] | None:
        from kizuna.config import get_settings

        most = get_settings().max_tags_per_customer
        if value is not None and len(set(value)) > most:
            raise PydanticCustomError(
                "too_many_tags",
                "{count} tags; a customer has at most {limit}",
                {"count": len(set(value)), "limit": most},
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PydanticCustomError("timezone_unknown", "unknown time zone '{value}'", {"value": value}) from exc
        return value

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class CustomerCreate(_CustomerFields):
    pass


class CustomerUpdate(_CustomerFields):
    version: int | None = Field(default=None, description="The version you read; a mismatch answers 409.")


class CompanyBrief(Output):
    id: int
    name: str


class CustomerRead(Output):
    id: int
    external_id: str | None
    email: str | None
    phone: str | None
    family_name: str | None
    given_name: str | None
    family_name_kana: str | None
    given_name_kana: str | None
    full_name: str
    full_name_kana: str | None
    birth_date: dt.date | None
    gender: str | None
    postal_code: str | None
    prefecture: str | None
    city: str | None
    address_line: str | None
    country: str | None
    company_id: int | None
    owner_id: int | None
    lifecycle_stage: str
    timezone: str
    locale: str
    source: str | None
    attributes: StoredJSON
    tags: list[str] = []
    status: str
    merged_into_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_names(cls, value: Any) -> Any:
        return [t if isinstance(t, str) else t.name for t in value or []]


class IdentityRead(Output):
    id: int
    kind: str
    value: str
    source: str | None = None
    created_at: dt.datetime


class IdentityCreate(Input):
    kind: str = Field(
        max_length=64,
        description="email, phone, external_id, line_user_id, anonymous_id, or external_id:<source> (e.g. "
        "external_id:shopify). Phone is a hint (shared numbers allowed); every other kind is unique.",
    )
    value: str = Field(max_length=320)
    primary: bool = Field(default=False, description="Also make it the customer's email / phone / external_id.")


class IdentityAdded(IdentityRead):
    shared_with: list[int] = Field(default_factory=list, description="Other customers holding this hint value.")


class DuplicatePairRead(Output):
    id: int
    customer_id: int
    other_customer_id: int
    reason: str
    status: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None


class ConsentCreate(Input):
    channel: Channel
    purpose: Text = Field(default="marketing", max_length=32)
    status: ConsentStatus
    method: Text = Field(max_length=64, description="How it was given: web_form, phone, business_card, store, ...")
    source: Text | None = Field(
        default=None, max_length=200, description="Where it was given: a form's URL, a campaign, the call centre."
    )
    evidence: OptionalFreeText = Field(default=None, max_length=5000, description="Form wording, URL or reference.")
    recorded_at: UTCTime | None = Field(
        default=None, description="When the person decided (evidence); defaults to now. Never in the future."
    )

    @field_validator("recorded_at")
    @classmethod
    def _not_future(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
            raise PydanticCustomError("future_decision", "a consent decision cannot be recorded in the future")
        return value


class ConsentRead(Output):
    id: int
    channel: str
    purpose: str
    status: str
    method: str
    source: str | None = None
    evidence: str | None
    recorded_at: dt.datetime
    recorded_by: str


class NoteCreate(Input):
    body: FreeText = Field(min_length=1, max_length=20000, description="Kept as written: line breaks, no normalising.")


class NoteRead(Output):
    id: int
    customer_id: int
    author_user_id: int | None
    body: str
    created_at: dt.datetime
    version: int


class BulkChange(Input):
    """One change applied to each selected customer (all or nothing)."""

    ids: list[int] = Field(min_length=1, max_length=500, description="The selected customers' ids.")
    add_tags: list[Text] = Field(default_factory=list, max_length=20)
    remove_tags: list[Text] = Field(default_factory=list, max_length=20)
    owner_id: int | None = Field(default=None, description="Assign this user as owner of every selected customer.")
    clear_owner: bool = Field(default=False, description="Remove the owner of every selected customer.")


class BulkResult(Output):
    changed: int = Field(description="How many customers changed (the others already had the change).")


class MergeRequest(Input):
    merge_id: int = Field(description="The customer folded into this one; its id keeps resolving here.")
    reason: FreeText = Field(default="manual merge", max_length=200)
    keep: dict[str, Literal["survivor", "merged"]] = Field(
        default_factory=dict,
        description="Whose values this customer ends with, per field group (name, name_kana, email, phone, address, "
        "birth_date, company_id, owner_id, lifecycle_stage, ...): 'merged' takes the other record's, 'survivor' "
        "keeps this one's as they are. Groups not named keep this customer's values and gain the other's where "
        "this one has none.",
        examples=[{"email": "merged", "address": "merged"}],
    )
    versions: dict[int, int] | None = Field(
        default=None,
        description="Customer id -> the version you read (from an ETag): a record changed since then refuses (409).",
    )


class DuplicateScanRead(Output):
    id: int
    status: str = Field(description="queued (waiting for the worker) or done")
    requested_by: str
    requested_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    candidates: int = Field(description="Pairs the blocking rules found, known ones included.")
    proposed: int = Field(description="New pairs this scan added for review.")
    details: StoredJSON = Field(description="Per rule: blocks, pairs, blocks too large to pair, seconds.")


class CompanyCreate(Input):
    external_id: Text | None = Field(default=None, max_length=128)
    name: Text = Field(min_length=1, max_length=300)
    name_kana: Kana | None = Field(default=None, max_length=300)
    domain: Text | None = Field(default=None, max_length=255)
    industry: Text | None = Field(default=None, max_length=100)
    phone: Phone | None = None
    postal_code: Text | None = Field(default=None, max_length=16)
    prefecture: Text | None = Field(default=None, max_length=100)
    city: Text | None = Field(default=None, max_length=200)
    address_line: Text | None = Field(default=None, max_length=300)
    country: Text | None = Field(default=None, min_length=2, max_length=2)
    owner_id: int | None = None
    attributes: FreeJSON | None = None

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        # ISO 3166 codes are stored in capitals, as a customer's are (the page compares with "JP").
        return value.upper() if value else value


class CompanyUpdate(CompanyCreate):
    name: Text | None = Field(default=None, min_length=1, max_length=300)  # type: ignore[assignment]
    version: int | None = None


class CompanyRead(Output):
    id: int
    external_id: str | None
    name: str
    name_kana: str | None
    domain: str | None
    industry: str | None
    phone: str | None
    postal_code: str | None
    prefecture: str | None
    city: str | None
    address_line: str | None
    country: str | None
    owner_id: int | None
    attributes: StoredJSON
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class TimelineItem(Output):
    kind: str = Field(description="event, order, note, consent, merge ...")
    id: int
    occurred_at: dt.datetime
    title: str
    channel: str | None = None
    data: StoredJSON = {}


# --- the customer 360 page (one read for the UI page and GET /customers/{id}/360) -------------------------


class OrderLineBrief(Output):
    sku: str | None
    product_id: int | None
    product_name: str | None = None
    quantity: int
    amount: MoneyOut


class OrderBrief(Output):
    id: int
    external_id: str | None
    ordered_at: dt.datetime
    status: str
    channel: str | None
    store: str | None
    currency: str
    total_amount: MoneyOut
    lines: list[OrderLineBrief]


class NoteWithAuthor(NoteRead):
    author_name: str | None = None


class SpendRead(Output):
    """Spend in one currency, by the one definition of spend (``orders/spend.py``)."""

    currency: str
    amount: MoneyOut
    orders: int
    average_order_value: MoneyOut | None


class CustomerMetricsRead(Output):
    """The customer's persisted metrics (``analytics.metrics``), as of the refresh that computed them."""

    currency: str
    rfm_segment: str
    r: int
    f: int
    m: int
    decile: int = Field(description="1 = the top tenth of customers by spend.")
    top_category: str | None
    clv: MoneyOut | None = Field(description="Discounted CLV; null until a CLV run has scored the customer.")
    p_alive: float | None
    churn_risk: float | None
    expected_purchases: float | None
    computed_at: dt.datetime = Field(description="When these values were last written (a change).")
    checked_at: dt.datetime | None = Field(
        default=None, description="When the latest refresh recomputed every customer (and found these values)."
    )
    clv_computed_at: dt.datetime | None


class CustomerSummary(Output):
    """The figures at the head of the 360 page; revenue is spend as the analytics count it (``orders/spend.py``)."""

    currency: str | None = Field(description="The main currency: the default one when spent in, else the most used.")
    lifetime_revenue: MoneyOut = Field(description="Spend in the main currency (completed orders, no refunds).")
    order_count: int = Field(description="Orders that count as spend, in every currency.")
    average_order_value: MoneyOut | None = Field(description="In the main currency.")
    revenue_by_currency: list[SpendRead] = Field(description="Spend per currency, main currency first.")
    first_order_at: dt.datetime | None = Field(description="The first order that counts as spend.")
    last_order_at: dt.datetime | None = Field(description="The last order that counts as spend.")
    last_activity: TimelineItem | None = Field(description="The newest event, order or note.")
    owner_id: int | None
    owner_name: str | None
    consent: dict[str, str] = Field(
        description="Marketing consent in force per channel: granted, withdrawn, or none (never asked)."
    )
    metrics: CustomerMetricsRead | None = Field(
        default=None, description="RFM segment, decile, CLV and churn risk as last computed; null before."
    )


class Customer360(Output):
    """Everything the customer 360 page shows, as one typed read."""

    customer: CustomerRead
    summary: CustomerSummary
    company: CompanyBrief | None
    owner_name: str | None = Field(description="The owner's name, else e-mail; null when there is no owner.")
    merged_ids: list[int] = Field(description="Ids merged into this customer; they resolve here.")
    consents: list[ConsentRead] = Field(description="The decision in force per channel and purpose.")
    identities: list[IdentityRead]
    duplicates: list[DuplicatePairRead] = Field(description="Open pairs with customers that may be this person.")
    orders: list[OrderBrief] = Field(description="The newest orders, newest first.")
    notes: list[NoteWithAuthor] = Field(description="Every note, newest first.")
    timeline: list[TimelineItem] = Field(description="The newest touchpoints, newest first.")
    timeline_next_cursor: str | None = Field(description="Pass to the timeline to read older touchpoints.")
    provisions: list[ProvisionRead] = Field(
        default_factory=list,
        description="The newest records of this customer's data given to third parties (APPI), newest first.",
    )
    provisions_total: int = Field(default=0, description="How many provision records there are in all.")


# --- the company page (one read for the UI page and GET /companies/{id}/360) -------------------------------


class ContactBrief(Output):
    id: int
    full_name: str
    full_name_kana: str | None
    email: str | None
    phone: str | None
    lifecycle_stage: str
    last_activity_at: dt.datetime | None = Field(default=None, description="Their newest event, order or note.")


class ContactActivity(Output):
    customer_id: int
    customer_name: str
    item: TimelineItem


class Company360(Output):
    """Everything the company page shows: the company, its contacts (paged), their spend and recent activity."""

    company: CompanyRead
    owner_name: str | None
    contact_count: int = Field(description="Active customers of the company.")
    contacts: list[ContactBrief] = Field(description="A page of contacts, by name.")
    contacts_next_cursor: str | None
    currency: str | None = Field(description="The main currency of the contacts' spend.")
    lifetime_revenue: MoneyOut = Field(description="The contacts' spend in the main currency (orders/spend.py).")
    order_count: int
    revenue_by_currency: list[SpendRead]
    recent_activity: list[ContactActivity] = Field(description="The contacts' newest events, orders and notes.")


ListName = Literal["customers", "deals"]


class SavedViewCreate(Input):
    """A named list state: the list form's fields (``q``, ``tag``, ``mine``, ``sort`` ...) and visible columns."""

    name: Text = Field(min_length=1, max_length=100)
    list_name: ListName = "customers"
    params: dict[str, str] = Field(default_factory=dict, max_length=20)
    # None: the list's default columns.
    columns: list[str] | None = Field(default=None, max_length=30)


class SavedViewRead(Output):
    id: int
    name: str
    list_name: str
    params: dict[str, str]
    columns: list[str]
    is_default: bool
    created_at: dt.datetime


class CardDraftRead(Output):
    """What a business-card scan seems to say (``POST /cards/scan``); correct it, then ``POST /cards``."""

    full_name: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    full_name_kana: str | None = None
    company: str | None = None
    department: str | None = None
    title: str | None = None
    email: str | None = None
    phones: list[str] = Field(default_factory=list, description="E.164, the first is the main one.")
    fax: str | None = None
    url: str | None = None
    postal_code: str | None = None
    prefecture: str | None = None
    city: str | None = None
    address_line: str | None = None
    lines: list[str] = Field(default_factory=list, description="The lines as recognised, to compare with the card.")


class CardContactIn(Input):
    """A confirmed business card: saved as a customer by the import's identity rules (e-mail or phone needed)."""

    family_name: str | None = Field(default=None, max_length=100)
    given_name: str | None = Field(default=None, max_length=100)
    full_name_kana: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=300)
    department: str | None = Field(default=None, max_length=300)
    title: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    other_phones: str | None = Field(default=None, max_length=200)
    fax: str | None = Field(default=None, max_length=40)
    url: str | None = Field(default=None, max_length=500)
    postal_code: str | None = Field(default=None, max_length=16)
    prefecture: str | None = Field(default=None, max_length=20)
    city: str | None = Field(default=None, max_length=100)
    address_line: str | None = Field(default=None, max_length=300)


class CardSavedRead(Output):
    customer_id: int
    outcome: Literal["inserted", "updated", "unchanged"]
