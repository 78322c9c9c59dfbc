"""Identity stitching: which customer each tracked message belongs to, for a whole batch at once.

A ``userId`` is the customer's ``external_id`` (the id the website or app knows them by, usually the shop's
customer number, so imported customers and tracked visitors meet); an ``anonymousId`` is an ``anonymous_id``
identity; an identify call's ``traits.email`` is an ``email`` identity. Every identity of the batch is read in
one query, with the status of each holder.

A visitor seen only by an anonymous id becomes a customer with status ``anonymous``: kept out of lists,
analytics, segments and sends by their default scope, and removed after ``KIZUNA_ANONYMOUS_RETENTION_DAYS``
without activity (``purge_anonymous``). When an identify or alias tells who the visitor is, the anonymous
profile becomes that person: it is promoted to ``active`` if the person is new, or merged into the person's
customer (``merge.py``), which keeps both histories, so the events recorded before the identify show on the
person's timeline. This is the one case where an identity links two records without a person deciding: an
anonymous profile is a visitor's trail, not a customer record anyone keeps. Two *active* customers are never
merged here; an alias between them is refused with both named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import ColumnElement, Select, String, and_, any_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from kizuna.auth.permissions import Actor
from kizuna.config import get_settings
from kizuna.customers import identities
from kizuna.customers.merge import merge_customers
from kizuna.customers.models import Customer, CustomerIdentity, in_index_of
from kizuna.customers.service import _refresh_names
from kizuna.db import utcnow
from kizuna.errors import KizunaError
from kizuna.ingest.spec import Message, MessageError
from kizuna.outbox.service import emit

ANONYMOUS = "anonymous"
USER = "external_id"
ANON = "anonymous_id"
EMAIL = "email"
# Traits that fill the customer's own fields (when empty); every other scalar trait goes to attributes.
_NAME_TRAITS = {"lastName": "family_name", "last_name": "family_name", "firstName": "given_name"}
_NAME_TRAITS |= {"first_name": "given_name"}
_SKIP_TRAITS = {"email", "phone", "name", "id", "userId", "anonymousId", *_NAME_TRAITS}


@dataclass
class Stitcher:
    """Resolves the messages of one batch in order, creating, promoting and merging customers as it goes."""

    session: Session
    actor: Actor
    source: str
    owner: dict[tuple[str, str], int] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    merged_into: dict[int, int] = field(default_factory=dict)
    created: int = 0

    def load(self, messages: Iterable[Message]) -> None:
        """Read every identity the batch names and its holder's status, in one query."""
        keys: list[tuple[str, str]] = []
        for m in messages:
            if m.user_id:
                keys.append((USER, m.user_id))
            if m.anonymous_id:
                keys.append((ANON, m.anonymous_id))
            if m.previous_id:
                keys += [(USER, m.previous_id), (ANON, m.previous_id)]
            email = _email(m)
            if email:
                keys.append((EMAIL, email))
        if not keys:
            return
        keys = identities.keys_of(keys)
        if self.session.get_bind().dialect.name == "postgresql":
            # Two batches that meet the same new visitor would both create them; the second would then fail on
            # the unique identity (or deadlock with the first). Locking the batch's identities first, in one
            # order, makes the second wait for the first to commit and then read what it created.
            locks = sorted({_lock_key(k) for k in keys})
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"),
                {"keys": locks},
            )
        # Who holds each identity, with their status, in one query (per 5,000 keys): a query per kind and one for
        # the statuses cost three statements' worth of SQLAlchemy's Python per batch.
        for start in range(0, len(keys), 5000):
            by_kind: dict[str, list[str]] = {}
            for kind, value in keys[start : start + 5000]:
                by_kind.setdefault(kind, []).append(value)
            kinds = tuple(sorted(by_kind))
            params = {f"v{i}": by_kind[kind] for i, kind in enumerate(kinds)}
            query = _holders(kinds, self.session.get_bind().dialect.name == "postgresql")
            for kind, value, customer_id, status in self.session.execute(query, params):
                key = (kind, value)
                known = self.owner.get(key)
                self.owner[key] = customer_id if known is None else min(known, customer_id)
                self.status[customer_id] = status

    def resolve(self, m: Message) -> int:
        """The customer ``m`` belongs to (after any promotion or merge it causes)."""
        if m.call == "alias":
            return self._alias(m)
        email = _email(m)
        person = self._live(self.owner.get((USER, m.user_id))) if m.user_id else None
        if person is None and email:
            person = self._live(self.owner.get((EMAIL, email)))
        visitor = self._live(self.owner.get((ANON, m.anonymous_id))) if m.anonymous_id else None
        if person is None and (m.user_id or email):
            if visitor is not None and self.status[visitor] == ANONYMOUS:
                person = visitor
                self._promote(person)
            else:
                person = self._create("active", external_id=m.user_id, email=email)
        if person is None:
            if visitor is None:
                visitor = self._create(ANONYMOUS)
                self._attach(visitor, ANON, m.anonymous_id)  # type: ignore[arg-type]
            return visitor
        if m.user_id:
            self._attach(person, USER, m.user_id)
        if email:
            self._attach(person, EMAIL, email)
        if m.anonymous_id:
            if visitor is None:
                self._attach(person, ANON, m.anonymous_id)
            elif visitor != person and self.status[visitor] == ANONYMOUS:
                self._merge(visitor, into=person, why=f"identified by {self.source}")
        if m.call == "identify" and m.traits:
            self._traits(person, m.traits)
        return person

    def _alias(self, m: Message) -> int:
        assert m.user_id and m.previous_id
        person = self._live(self.owner.get((USER, m.user_id)))
        before = self._live(self.owner.get((USER, m.previous_id))) or self._live(self.owner.get((ANON, m.previous_id)))
        if before is None:
            if person is None:
                person = self._create("active", external_id=m.user_id)
            self._attach(person, ANON, m.previous_id)
            return person
        if person is None or person == before:
            if self.status[before] == ANONYMOUS:
                self._promote(before)
            self._attach(before, USER, m.user_id)
            return before
        if self.status[before] == ANONYMOUS:
            self._merge(before, into=person, why=f"alias from {self.source}")
            return person
        if self.status[person] == ANONYMOUS:
            self._merge(person, into=before, why=f"alias from {self.source}")
            return before
        raise MessageError(
            f"previousId and userId belong to two customers ({before} and {person}); merge them in Kizuna if they "
            "are one person",
            field="previousId",
        )

    def _live(self, customer_id: int | None) -> int | None:
        while customer_id is not None and customer_id in self.merged_into:
            customer_id = self.merged_into[customer_id]
        return customer_id

    def _create(self, status: str, *, external_id: str | None = None, email: str | None = None) -> int:
        settings = get_settings()
        now = utcnow()
        customer_id = self.session.execute(
            insert(Customer.__table__).returning(Customer.__table__.c.id),
            {
                "status": status,
                "external_id": external_id,
                "email": email,
                "full_name": "",
                "lifecycle_stage": "customer" if status == "active" else "lead",
                "timezone": settings.default_timezone,
                "locale": settings.default_locale,
                "source": self.source[:64],
                "attributes": {},
                "version": 1,
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        self.status[customer_id] = status
        if external_id:
            self._attach(customer_id, USER, external_id)
        if email:
            self._attach(customer_id, EMAIL, email)
        if status == "active":
            self._announce(customer_id)
        self.created += 1
        return customer_id

    def _announce(self, customer_id: int) -> None:
        emit(self.session, "customer.created", {"customer_id": customer_id}, customer_id=customer_id, origin="tracking")

    def _promote(self, customer_id: int) -> None:
        self.session.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(status="active", lifecycle_stage="customer", updated_at=utcnow(), version=Customer.version + 1)
            .execution_options(synchronize_session=False)
        )
        self.status[customer_id] = "active"
        self._announce(customer_id)

    def _attach(self, customer_id: int, kind: str, value: str) -> None:
        """Give the customer this identity unless someone holds it (a unique identity is never taken over)."""
        key = (kind, value)
        if key in self.owner:
            return
        self.owner[key] = customer_id
        self.session.execute(
            insert(CustomerIdentity.__table__), {"customer_id": customer_id, "kind": kind, "value": value}
        )
        column = identities.KINDS[kind].column
        if column:
            # The first value of a kind becomes the customer's primary (the mirrored column), as everywhere.
            self.session.execute(
                update(Customer)
                .where(Customer.id == customer_id, getattr(Customer, column).is_(None))
                .values({column: value, "version": Customer.version + 1, "updated_at": utcnow()})
                .execution_options(synchronize_session=False)
            )

    def _merge(self, anonymous: int, *, into: int, why: str) -> None:
        self.session.flush()
        # Rows were changed around the ORM (promotions, primaries): the merge must read them as stored.
        self.session.expire_all()
        merge_customers(self.session, actor=self.actor, survivor_id=into, merged_id=anonymous, reason=why)
        self.merged_into[anonymous] = into
        self.status[anonymous] = "merged"
        for key, holder in list(self.owner.items()):
            if holder == anonymous:
                self.owner[key] = into

    def _traits(self, customer_id: int, traits: dict) -> None:
        customer = self.session.get(Customer, customer_id)
        if customer is None:
            return
        self.session.refresh(customer)
        changed = False
        for trait, column in _NAME_TRAITS.items():
            value = traits.get(trait)
            if isinstance(value, str) and value.strip() and not getattr(customer, column):
                setattr(customer, column, value.strip()[:100])
                changed = True
        name = traits.get("name")
        if isinstance(name, str) and name.strip() and not customer.family_name and not customer.given_name:
            customer.family_name = name.strip()[:100]
            changed = True
        extra = {
            k: v
            for k, v in traits.items()
            if k not in _SKIP_TRAITS and isinstance(v, (str, int, float, bool)) and len(str(k)) <= 64
        }
        if extra and any((customer.attributes or {}).get(k) != v for k, v in extra.items()):
            customer.attributes = {**(customer.attributes or {}), **extra}
            changed = True
        if changed:
            _refresh_names(customer)
            self.session.flush()


@lru_cache(maxsize=64)
def _holders(kinds: tuple[str, ...], postgres: bool) -> Select:
    """Who holds identities of these kinds (values bound as ``v0``, ``v1`` ...), with their status; built once
    per set of kinds, since building it per batch cost more Python than running it. PostgreSQL gets one array
    per kind (psycopg parses a query of over 50 parameters again each time)."""
    ci = CustomerIdentity

    def among(i: int) -> ColumnElement[bool]:
        if postgres:
            return ci.value == any_(bindparam(f"v{i}", type_=ARRAY(String)))
        return ci.value.in_(bindparam(f"v{i}", expanding=True))

    return (
        select(ci.kind, ci.value, ci.customer_id, Customer.status)
        .join(Customer, Customer.id == ci.customer_id)
        .where(or_(*(and_(ci.kind == kind, among(i), in_index_of(kind, ci.kind)) for i, kind in enumerate(kinds))))
    )


def _lock_key(key: tuple[str, str]) -> int:
    digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _email(m: Message) -> str | None:
    if m.call != "identify":
        return None
    value = m.traits.get("email")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return identities.normalise(EMAIL, value)
    except KizunaError:
        return None
