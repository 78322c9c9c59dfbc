"""Where the analytics run: an Ibis backend that reads the CRM's tables.

By default an in-process DuckDB attaches the store itself, read-only, through DuckDB's SQLite or PostgreSQL
scanner (loaded from the ``duckdb-ext-*`` wheels, so nothing is downloaded at run time). ``KIZUNA_ANALYTICS_URL``
points the same analyses at another Ibis backend that holds the CRM's tables under their own names (the
PostgreSQL store itself, a replica, Spark, ClickHouse...); Spark URLs (``pyspark://``, ``sc://``) are read by
``analytics.spark``, which builds the Spark session Ibis then uses.

Every analysis reads the store through ``Store``, which gives the same column types on every backend: money as
``decimal(18, 2)`` (SQLite keeps integer cents, see ``db.MoneyType``) and times as seconds since the epoch (UTC),
which every backend computes the same way and compares without time-zone rules of its own.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
from sqlalchemy.engine import make_url

from kizuna.analytics import spark
from kizuna.config import get_settings
from kizuna.errors import KizunaError

MONEY = "decimal(18, 2)"


class AnalyticsUnavailable(KizunaError):
    status_code = 503
    code = "analytics_unavailable"


def _extension(name: str) -> Path:
    """The DuckDB extension file shipped by the ``duckdb-ext-<name>`` wheel for this DuckDB version."""
    import duckdb

    try:
        import duckdb_ext
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise AnalyticsUnavailable(f"the duckdb-ext-{name} package is not installed") from exc
    for base in duckdb_ext.__path__:
        found = sorted(Path(base).glob(f"extensions/v{duckdb.__version__}/*/{name}_scanner.duckdb_extension"))
        if found:
            return found[0]
    raise AnalyticsUnavailable(
        f"no {name}_scanner extension for DuckDB {duckdb.__version__}; install duckdb-ext-{name} of the same version"
    )


def _libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a libpq connection string (what DuckDB's scanner takes)."""
    u = make_url(url)
    parts = {"dbname": u.database, "user": u.username, "password": u.password, "host": u.host, "port": u.port}
    text = " ".join(f"{k}={v}" for k, v in parts.items() if v not in (None, ""))
    schema = (u.query or {}).get("options")
    return f"{text} options='{schema}'" if schema else text


@dataclass
class Store:
    """The CRM's tables on an Ibis backend, with their columns in one shape on every backend."""

    con: Any
    database: str | None
    money_in_cents: bool
    name: str
    # A connection kept for the life of the process (a Spark session takes seconds to start): not closed per use.
    shared: bool = False

    def table(self, name: str) -> ir.Table:
        return self.con.table(name, database=self.database) if self.database else self.con.table(name)

    def money(self, column: ir.Value) -> ir.DecimalValue:
        if self.money_in_cents:
            # Whole cents below 2^53 divide to the double nearest k/100, which the cast rounds back exactly.
            return (column.cast("float64") / 100).cast(MONEY)
        return column.cast(MONEY)

    def orders(self) -> ir.Table:
        """Orders: ``id, customer_id, at`` (epoch seconds, UTC), ``amount`` (decimal), ``currency, status``."""
        t = self.table("orders")
        return t.select(
            id=t.id,
            customer_id=t.customer_id,
            at=epoch_seconds(t.ordered_at),
            amount=self.money(t.total_amount),
            currency=t.currency,
            status=t.status,
        )

    def customers(self) -> ir.Table:
        t = self.table("customers")
        return t.select(id=t.id, status=t.status, created_at=epoch_seconds(t.created_at))

    def order_lines(self) -> ir.Table:
        t = self.table("order_lines")
        return t.select(order_id=t.order_id, product_id=t.product_id, quantity=t.quantity, amount=self.money(t.amount))

    def products(self) -> ir.Table:
        """Products: ``id, sku, name, category, taste, brand`` (the last three may be null)."""
        t = self.table("products")
        return t.select(id=t.id, sku=t.sku, name=t.name, category=t.category, taste=t.taste, brand=t.brand)


def epoch_seconds(column: ir.TimestampValue) -> ir.IntegerValue:
    """Whole seconds since the epoch (UTC), rounded down: DuckDB and PostgreSQL keep the fraction of a second and
    SQLite and Spark drop it, so without the floor a recency or a period boundary could differ by a day."""
    return column.epoch_seconds().floor().cast("int64")


def open_store(database_url: str | None = None, analytics_url: str | None = None) -> Store:
    """The store the analytics read: the configured analytics backend, or DuckDB attached to the database,
    read-only (what the analytics write back, the per-customer metrics, goes through our own connections)."""
    settings = get_settings()
    analytics_url = analytics_url if analytics_url is not None else settings.analytics_url
    if analytics_url and spark.is_spark_url(analytics_url):
        target = spark.parse(analytics_url)
        con = spark.connect(analytics_url)
        # A user's ETL copies the CRM's tables into Spark with money as decimals (README: the analytics on Spark).
        return Store(con=con, database=target.database, money_in_cents=False, name="pyspark", shared=True)
    if analytics_url and not analytics_url.startswith("duckdb"):
        con = ibis.connect(analytics_url)
        # Kizuna's SQLite store keeps money as integer cents (db.MoneyType); every other store keeps decimals.
        return Store(con=con, database=None, money_in_cents=con.name == "sqlite", name=con.name)
    url = database_url or settings.resolved_database_url
    con = ibis.duckdb.connect(analytics_url.removeprefix("duckdb://") if analytics_url else ":memory:")
    raw = con.con
    if url.startswith("sqlite"):
        path = make_url(url).database
        raw.execute(f"LOAD '{_extension('sqlite')}'")
        # Always read-only: a second SQLite library writing (or checkpointing) the file from inside our process
        # would break the locks of our own connections, which POSIX ties to the process, not the connection.
        raw.execute(f"ATTACH '{_quote(path or '')}' AS store (TYPE sqlite, READ_ONLY)")
        return Store(con=con, database="store", money_in_cents=True, name="duckdb+sqlite")
    if url.startswith("postgresql"):
        raw.execute(f"LOAD '{_extension('postgres')}'")
        raw.execute(f"ATTACH '{_quote(_libpq(url))}' AS store (TYPE postgres, READ_ONLY)")
        schema = _search_path(url)
        return Store(
            con=con,
            database=f"store.{schema}" if schema else "store",
            money_in_cents=False,
            name="duckdb+postgres",
        )
    raise AnalyticsUnavailable(f"the analytics cannot read a store at {make_url(url).drivername}")


def ibis_url(database_url: str) -> str:
    """The Ibis URL of a SQLAlchemy database URL (to run the analytics in the store's own engine)."""
    u = make_url(database_url)
    if u.drivername.startswith("sqlite"):
        return f"sqlite:///{u.database}"
    if u.drivername.startswith("postgresql"):
        auth = u.username or ""
        if u.password:
            auth += f":{u.password}"
        host = f"{u.host or 'localhost'}:{u.port or 5432}"
        return f"postgres://{auth + '@' if auth else ''}{host}/{u.database}"
    raise AnalyticsUnavailable(f"no Ibis backend for {u.drivername}")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _search_path(url: str) -> str | None:
    options = (make_url(url).query or {}).get("options", "")
    if isinstance(options, str) and "search_path=" in options:
        return options.split("search_path=", 1)[1].split()[0].split(",")[0]
    return None


@contextmanager
def store_session(database_url: str | None = None) -> Iterator[Store]:
    """A store for the length of a block (the DuckDB connection is closed at the end)."""
    store = open_store(database_url)
    try:
        yield store
    finally:
        disconnect = getattr(store.con, "disconnect", None)
        if disconnect and not store.shared:
            disconnect()


# --- one SQLite library per process ---------------------------------------------------------------------------
# DuckDB reads a SQLite store through its own copy of the SQLite library. POSIX file locks belong to a process,
# not to a connection, and a close() of any descriptor of the file drops all of them: when DuckDB's copy closes
# the file, the locks our own connections (SQLAlchemy's sqlite3) hold on it are gone, and another process (the
# worker, the server) may then reset the WAL index under them, so each side stops seeing the other's commits.
# So in a process that uses the store through SQLAlchemy, DuckDB reads a SQLite store only in a child process of
# its own, which holds no other connection to it; results come back pickled.

_CHILD: Any = None
_CHILD_LOCK = __import__("threading").Lock()
# Off only in tests that hand DuckDB a SQLite file of their own, read by nothing else in their process.
CHILD_FOR_SQLITE = True


def needs_child(database_url: str | None = None, analytics_url: str | None = None) -> bool:
    """The analytics would read a SQLite store through DuckDB's SQLite library."""
    settings = get_settings()
    analytics_url = analytics_url if analytics_url is not None else settings.analytics_url
    if analytics_url and not analytics_url.startswith("duckdb"):
        return False
    return CHILD_FOR_SQLITE and (database_url or settings.resolved_database_url).startswith("sqlite")


def _child_pool() -> Any:
    global _CHILD
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with _CHILD_LOCK:
        if _CHILD is None:
            _CHILD = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            # Stopped before the interpreter tears down the modules its own clean-up would need.
            atexit.register(_CHILD.shutdown, wait=False, cancel_futures=True)
        return _CHILD


def _settings_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("KIZUNA_")}


def _in_child(fn: Any, args: tuple[Any, ...], database_url: str, env: dict[str, str]) -> Any:
    import os

    for key in [k for k in os.environ if k.startswith("KIZUNA_")]:
        os.environ.pop(key)
    os.environ.update(env)
    get_settings.cache_clear()
    with store_session(database_url) as store:
        return fn(store, *args)


def run_on_store(fn: Any, *args: Any, database_url: str | None = None) -> Any:
    """``fn(store, *args)`` on the analytics store: here, or for a SQLite store read by DuckDB in the child
    process (``fn`` and its arguments and result must pickle: module-level functions, Pydantic models, Arrow)."""
    from concurrent.futures.process import BrokenProcessPool

    url = database_url or get_settings().resolved_database_url
    if not needs_child(url):
        with store_session(url) as store:
            return fn(store, *args)
    global _CHILD
    for attempt in (1, 2):
        try:
            return _child_pool().submit(_in_child, fn, args, url, _settings_env()).result()
        except BrokenProcessPool:
            # The child died (killed, out of memory): start another once.
            with _CHILD_LOCK:
                _CHILD = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
