"""Customers, companies and everything that belongs to one person: identities, consents, tags, notes, merges."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    Computed,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kizuna.db import Base, JSONType, Timestamped, UTCDateTime, Versioned, utcnow

NAME_KEY_SQL = "lower(replace(full_name, ' ', ''))"
NAME_SORT_SQL = "coalesce('1' || replace(full_name_kana, ' ', ''), '2' || lower(replace(full_name, ' ', '')))"
# Code-point order on both backends (SQLite compares text as binary already).
_KEY = String(250).with_variant(String(250, collation="C"), "postgresql")


class Company(Timestamped, Versioned, Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    name_kana: Mapped[str | None] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    industry: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    prefecture: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(200))
    address_line: Mapped[str | None] = mapped_column(String(300))
    country: Mapped[str | None] = mapped_column(String(2))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)


customer_tags = Table(
    "customer_tags",
    Base.metadata,
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Customer(Timestamped, Versioned, Base):
    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_status_id", "status", "id"),
        # The list sorted by name reads this in order, ties broken by id (PostgreSQL orders equal keys by
        # their place in the table, not by id, so the id is spelt out).
        Index("ix_customers_status_name_sort", "status", "name_sort", "id"),
        # The search reads its matches from these, and the status of each match with them (no table read).
        Index("ix_customers_name_key", "name_key", "status"),
        Index("ix_customers_name_sort", "name_sort", "status"),
        # A company's contacts by name (the company page, the list filtered by company): without it SQLite,
        # which keeps no statistics, walks the status/name index over every customer to find a company's few
        # (2.9 s for a company without contacts on the 1M benchmark, 17 ms with it). Also serves company_id alone.
        Index("ix_customers_company_status_name", "company_id", "status", "name_sort", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The primary contact points; every one of them is also a row in customer_identities.
    external_id: Mapped[str | None] = mapped_column(String(128), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    family_name: Mapped[str | None] = mapped_column(String(100))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name_kana: Mapped[str | None] = mapped_column(String(100))
    given_name_kana: Mapped[str | None] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(250), default="", index=True)
    full_name_kana: Mapped[str | None] = mapped_column(String(250))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(16))
    postal_code: Mapped[str | None] = mapped_column(String(16))
    prefecture: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(200))
    address_line: Mapped[str | None] = mapped_column(String(300))
    country: Mapped[str | None] = mapped_column(String(2))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="customer")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Tokyo")
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    source: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict] = mapped_column(JSONType, default=dict)
    # A merged customer stays as a row so its old id still resolves to the survivor.
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)

    tags: Mapped[list[Tag]] = relationship(secondary=customer_tags, lazy="selectin", order_by=Tag.name)
    company: Mapped[Company | None] = relationship(lazy="joined")

    # Search and sort keys the database derives from the names (generated columns, so no write path, import or
    # bulk load can leave them stale). ``name_key``: the name without spaces, lower-cased, so that 山田充 finds
    # 山田 充 with an index range (``name_key >= '山田充'``) instead of scanning every row. ``name_sort``: the
    # order of the name column, 五十音順 by the reading: '1' + the reading without spaces, or '2' + name_key
    # for people without a reading, who so come after everyone with one. Both compare by code point (binary on
    # SQLite, collation "C" on PostgreSQL), which for katakana is the order of the 50-sound table.
    name_key: Mapped[str | None] = mapped_column(_KEY, Computed(NAME_KEY_SQL))
    name_sort: Mapped[str | None] = mapped_column(_KEY, Computed(NAME_SORT_SQL))


class SavedView(Base):
    """A user's named list state: filters, sort and visible columns, re-applied with one click."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "list_name", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Which list the view belongs to ("customers"); the params are that list's form fields.
    list_name: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    columns: Mapped[list] = mapped_column(JSONType, default=list)
    # The view the list opens with (at most one per user and list).
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


# Identity kinds that only hint at the same person (a family or an office shares a phone): several customers
# may hold one value. Every other kind is unique. ``customers/identities.py`` builds its kinds on this.
HINT_KINDS = ("phone",)
_IS_HINT = text("kind IN (" + ", ".join(f"'{k}'" for k in HINT_KINDS) + ")")
_IS_UNIQUE = text("kind NOT IN (" + ", ".join(f"'{k}'" for k in HINT_KINDS) + ")")


def in_unique_index(kind: ColumnElement[str]) -> ColumnElement[bool]:
    """``kind`` is a unique kind, stated as the unique identity index's own condition (``_IS_UNIQUE``).

    Both identity indexes are partial, and SQLite uses a partial index only for a query that states its
    condition: it cannot infer ``kind NOT IN ('phone')`` from ``kind = 'email'`` (nor PostgreSQL from a bound
    parameter). A look-up by (kind, value) without this or ``in_hint_index`` scans every identity: measured
    on a 1M-customer import, 0.85 s per batch for the stranger check alone, growing with the table.
    """
    return kind.not_in([literal_column(f"'{k}'") for k in HINT_KINDS])


def in_hint_index(kind: ColumnElement[str]) -> ColumnElement[bool]:
    """``kind`` is a hint kind, stated as the hint index's own condition (see ``in_unique_index``)."""
    return kind.in_([literal_column(f"'{k}'") for k in HINT_KINDS])


def in_index_of(name: str, kind: ColumnElement[str]) -> ColumnElement[bool]:
    """The condition of the index that holds identities of kind ``name`` (add it to a look-up by kind and value)."""
    return in_hint_index(kind) if name in HINT_KINDS else in_unique_index(kind)


class CustomerIdentity(Base):
    """One way to recognise a customer: email, phone, external id, anonymous id, LINE user id..."""

    __tablename__ = "customer_identities"
    __table_args__ = (
        # Each row is in exactly one of these two indexes, so an import pays for one index insert per identity.
        Index("uq_customer_identities_kind_value", "kind", "value", unique=True, sqlite_where=_IS_UNIQUE,
              postgresql_where=_IS_UNIQUE),
        Index("ix_customer_identities_hint", "kind", "value", sqlite_where=_IS_HINT, postgresql_where=_IS_HINT),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(320))
    # Where it was learnt (an import file's source system, the tracking API, a form); free text.
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DuplicatePair(Base):
    """Two customers that may be one person (a shared phone, the same name and address ...), for review.

    ``customer_id`` is always the smaller id, so a pair is recorded once. Closed as ``dismissed`` (not the same
    person) or ``merged``; a dismissed pair is not proposed again.
    """

    __tablename__ = "customer_duplicates"
    __table_args__ = (
        UniqueConstraint("customer_id", "other_customer_id"),
        CheckConstraint("customer_id < other_customer_id", name="ordered"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    other_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | dismissed | merged
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(320))


class DuplicateScan(Base):
    """One run of the duplicate finder (``customers/duplicate_scan.py``): asked for, run by a worker or the CLI.

    The review page shows the newest one (when it ran, how many pairs it proposed); a run asked for while
    another waits or runs joins that one instead of queueing a second.
    """

    __tablename__ = "customer_duplicate_scans"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued | running | done
    requested_by: Mapped[str] = mapped_column(String(320))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Pairs the rules found (before the known ones were left out) and the new pairs proposed by this run.
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    proposed: Mapped[int] = mapped_column(Integer, default=0)
    # Per rule: blocks, pairs, blocks too large to pair, seconds.
    details: Mapped[dict] = mapped_column(JSONType, default=dict)


class Consent(Base):
    """One consent decision, kept forever as evidence; the newest per channel and purpose is in force."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_lookup", "customer_id", "channel", "purpose", "recorded_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32), default="marketing")
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(64))
    # Where the decision was taken (a form's URL, a campaign, the call centre); ``method`` says how.
    source: Mapped[str | None] = mapped_column(String(200))
    evidence: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(320))


class Note(Timestamped, Versioned, Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)


class CustomerMerge(Base):
    """A record that ``merged_id`` was folded into ``survivor_id``, with the merged record as it was."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[dict] = mapped_column(JSONType, default=dict)
    merged_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))


class CustomerImportMark(Base):
    """The last row of an import file that changed this customer: the file's SHA-256 and the row's line.

    Running the same file again must change nothing. A person the file repeats in different batches, with
    different values, would otherwise be rewritten by the earlier row and then back by the later one; with the
    mark, the earlier row is known to be superseded and left out.
    """

    __tablename__ = "customer_import_marks"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64))
    line: Mapped[int] = mapped_column(Integer)
