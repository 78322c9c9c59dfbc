"""Third-party provision records (APPI 第三者提供記録): one row per customer per hand-over.

``customer_id`` is deliberately not a foreign key: the record is the provider's evidence of what it handed over
and must be kept for three years (APPI art. 29, rule 14), even when the customer is deleted afterwards; like the
audit log, the id stays as written. Customer merges move the rows to the survivor (kizuna/customers/merge.py).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kizuna.db import Base, BigId, JSONType, UTCDateTime, utcnow


class ThirdPartyProvision(Base):
    __tablename__ = "third_party_provisions"
    __table_args__ = (
        # One customer's records, newest first (the 360 page, a disclosure request).
        Index("ix_third_party_provisions_customer", "customer_id", "provided_at"),
        # The admin list by date, and the retention purge (everything older than the cut-off).
        Index("ix_third_party_provisions_provided_at", "provided_at"),
        Index("ix_third_party_provisions_recipient", "recipient", "provided_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column()
    # Who received the data: a company name as the contract names it ("Google LLC (Google Ads)").
    recipient: Mapped[str] = mapped_column(String(200))
    # Which items of the customer's data were handed over (["email", "phone", ...]), never their values.
    fields: Mapped[list] = mapped_column(JSONType, default=list)
    purpose: Mapped[str] = mapped_column(String(64))
    provided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The actor label of who made the hand-over (a user's e-mail, system:worker ...).
    provided_by: Mapped[str] = mapped_column(String(320))
    # How it left: audience_export, webhook ...
    via: Mapped[str] = mapped_column(String(32))
    # What it was part of: "segment:12:google", a webhook delivery id ...
    reference: Mapped[str | None] = mapped_column(String(200))
