"""Database engine, sessions, the declarative base and the column types every domain shares."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, Numeric, Table, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, declared_attr, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from kizuna.config import get_settings
from kizuna.errors import Conflict, PreconditionFailed

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored in UTC and always returned time-zone aware.

    SQLite has no time zone type, so naive values would otherwise come back and compare wrongly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Kizuna stores time-zone aware timestamps only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def sqlite_time(value: dt.datetime) -> str:
    """The text a ``UTCDateTime`` column holds on SQLite for ``value`` (SQLAlchemy's DATETIME storage format:
    UTC, always six digits of microseconds, so that text order is time order), for writers that bind values
    themselves (``events.rows``)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; Kizuna stores time-zone aware timestamps only")
    v = value.astimezone(dt.UTC)
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"


MONEY_LIMIT = Decimal(10) ** 16  # Numeric(18, 2): 16 digits before the point, 2 after
_CENT = Decimal("0.01")


class MoneyType(TypeDecorator[Decimal]):
    """An exact amount of money, Numeric(18, 2), beside a currency column.

    PostgreSQL keeps NUMERIC. SQLite has no decimal type: a NUMERIC column there stores REAL, which keeps
    only 15 significant digits (cents were lost above 10^13) and drifts in sums. So on SQLite the value is
    stored as an integer count of cents (minor units): exact over the whole range, and SUM stays exact.
    Raw SQL on SQLite must divide by 100; everything going through these columns' types gets decimals.
    """

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            # No result processing by Numeric, which would go through a float.
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        amount = Decimal(value) if not isinstance(value, Decimal) else value
        if not amount.is_finite() or abs(amount) >= MONEY_LIMIT:
            raise ValueError(f"amount {value} is outside the range of money (less than 10^16 in size)")
        if dialect.name == "sqlite":
            return int(amount.quantize(_CENT) * 100)
        return amount

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            # Cents; SQLite may hand back a REAL for a value written around this type (raw SQL).
            cents = Decimal(repr(value)) if isinstance(value, float) else Decimal(int(value))
            return (cents / 100).quantize(_CENT)
        return Decimal(value).quantize(_CENT)


Money = MoneyType()
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def never_reuse_ids(metadata: MetaData) -> None:
    """Ask SQLite for AUTOINCREMENT on every table with an integer ``id`` primary key.

    Without it SQLite hands out max(id) + 1, so the id of a hard-deleted newest row came back for the next
    one, and audit entries or an integration holding the old id pointed at someone else. PostgreSQL's
    sequences never go back. Derived from the tables, so a new table cannot be forgotten.
    """
    for table in metadata.tables.values():
        if ids_are_public(table):
            table.dialect_options["sqlite"]["autoincrement"] = True


def ids_are_public(table: Table) -> bool:
    """Whether ``table`` has a single integer ``id`` primary key (the ids that API, UI and audit show)."""
    pk = list(table.primary_key.columns)
    return len(pk) == 1 and pk[0].name == "id" and isinstance(pk[0].type, (Integer, BigInteger))


def next_free_id(connection: Any, table: Table) -> int:
    """SQLite: the id AUTOINCREMENT would give the next row, for code that assigns ids itself (bulk imports).

    Above both the highest id in the table and the highest it ever held (``sqlite_sequence``), so an id of a
    deleted row is never handed out again.
    """
    from sqlalchemy import func, select, text

    highest = connection.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    ever = connection.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name})
    return max(int(highest or 0), int(ever or 0)) + 1


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class Versioned:
    """Optimistic locking: every UPDATE checks and bumps ``version`` (StaleDataError on a lost race)."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}


def check_version(current: int, *, if_match: int | None = None, body: int | None = None) -> None:
    """Refuse a write based on a stale read: 412 for an ``If-Match`` header, 409 for a ``version`` field."""
    if if_match is not None and if_match != current:
        raise PreconditionFailed(
            f"If-Match names version {if_match} but the record is at version {current}; read it again and retry",
            key="error.stale",
            params={"yours": if_match, "now": current},
        )
    if body is not None and body != current:
        raise Conflict(
            f"the record changed since you read it (your version {body}, now {current}); read it again and retry",
            field="version",
            key="error.stale",
            params={"yours": body, "now": current},
        )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=15000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    return make_engine(url or get_settings().resolved_database_url)


@lru_cache
def _sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def new_session(engine: Engine | None = None) -> Session:
    return _sessionmaker(engine or get_engine())()


def take_write_lock(connection: Connection, *, patience: float = 120.0) -> None:
    """SQLite: begin the connection's transaction IMMEDIATE (the write lock first); elsewhere nothing.

    Reading first and writing later could find another writer committed in between, and SQLite's busy handler
    polls with growing sleeps, so under many writers one waiter can starve past the busy timeout. This tries
    again after a short random pause until ``patience`` runs out instead of failing the request.
    """
    if connection.dialect.name != "sqlite":
        return
    if connection.connection.driver_connection.in_transaction:
        # Already writing (the tracking API's group commit stores several batches in one transaction).
        return
    deadline = time.monotonic() + patience
    while True:
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Session]:
    """A session whose work commits together at the end, or rolls back whole on any error."""
    session = new_session(engine)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(engine: Engine | None = None) -> None:
    """Create or upgrade the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    engine = engine or get_engine()
    here = Path(__file__).parent
    cfg = Config()
    cfg.set_main_option("script_location", str(here / "migrations"))
    cfg.attributes["engine"] = engine
    command.upgrade(cfg, "head")


def ready_engine() -> Engine:
    """The configured engine with its schema migrated to this release (what every CLI command starts from)."""
    engine = get_engine()
    migrate(engine)
    return engine
