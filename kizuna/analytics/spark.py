"""The analytics on Spark: ``KIZUNA_ANALYTICS_URL`` naming a Spark session, built here and handed to Ibis.

Two forms (README, "Running the analytics on Spark"):

- ``pyspark://MASTER?database=DB&spark.some.conf=value``: a Spark driver in this process (``pip install
  'kizuna[spark]'`` and Java 17 or 21). ``MASTER`` is any Spark master (``local[4]``, ``yarn``, ``spark://host:7077``,
  ``k8s://...``); empty (``pyspark://``) keeps what ``spark-submit`` or ``spark-defaults.conf`` set.
- ``sc://host:15002?database=DB``: a Spark Connect server (``pip install 'pyspark[connect]'`` beside Kizuna); the
  part before ``?`` is handed to Spark as it is, so Spark Connect's own ``/;token=...`` parameters work.

``database`` names the Spark database that holds the CRM's tables under their own names (``customers``,
``orders``, ``order_lines``, ``products``...), with money as decimals; without it the session's current database.

Ibis's own ``pyspark://`` URL is not used: it cannot name a master (``local[2]`` is no host name) and it sets
every option on the running session, which Spark refuses for static options such as the warehouse directory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from kizuna.errors import KizunaError

SCHEMES = ("pyspark://", "sc://")


class SparkUnavailable(KizunaError):
    status_code = 503
    code = "analytics_unavailable"


@dataclass(frozen=True)
class SparkTarget:
    """Where a Spark URL points: a master (in-process driver) or a Spark Connect address, and options."""

    master: str | None = None
    remote: str | None = None
    database: str | None = None
    conf: dict[str, str] = field(default_factory=dict)


def is_spark_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def parse(url: str) -> SparkTarget:
    """The Spark session a URL asks for; an option that is neither ``database`` nor ``spark.*`` is an error."""
    scheme = next((s for s in SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise SparkUnavailable(f"not a Spark URL: {url!r} (use pyspark://MASTER or sc://HOST:PORT)")
    # Split by hand: a master such as local[2] or spark://host:7077 is not a host name urllib would accept.
    location, _, query = url.removeprefix(scheme).partition("?")
    database = None
    conf: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "database":
            database = value or None
        elif key.startswith("spark."):
            conf[key] = value
        else:
            raise SparkUnavailable(f"unknown option {key!r} in the Spark URL (database=... or spark.*=... only)")
    if scheme == "sc://":
        if conf:
            raise SparkUnavailable("a Spark Connect URL takes no spark.* options: the server's configuration applies")
        return SparkTarget(remote=f"sc://{location}", database=database)
    return SparkTarget(master=location or None, database=database, conf=conf)


_backends: dict[str, Any] = {}
_lock = threading.Lock()


def connect(url: str) -> Any:
    """The Ibis pyspark backend for ``url``, one per process and URL: a Spark session is slow to start (seconds)
    and a process may hold only one driver, so it is kept open for the life of the process."""
    with _lock:
        backend = _backends.get(url)
        if backend is None or _stopped(backend):
            backend = _backends[url] = _connect(parse(url))
        return backend


def _connect(target: SparkTarget) -> Any:
    try:
        import ibis
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable("Spark is not installed: pip install 'kizuna[spark]'") from exc
    builder = SparkSession.builder
    if target.remote:
        builder = builder.remote(target.remote)
    else:
        if target.master:
            builder = builder.master(target.master)
        # Kizuna's times are instants; Spark shows and parses timestamps in its session time zone. Ibis sets UTC
        # too, but only after the session exists, so say it from the start.
        builder = builder.config("spark.sql.session.timeZone", "UTC")
        for key, value in target.conf.items():
            builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # Java missing, master unreachable, connect dependencies missing...
        raise SparkUnavailable(f"could not start a Spark session: {exc}") from exc
    backend = ibis.pyspark.connect(session)
    # A mistyped database would otherwise surface later as a missing table; databaseExists also takes catalog.db.
    if target.database and not session.catalog.databaseExists(target.database):
        known = sorted(db.name for db in session.catalog.listDatabases())
        raise SparkUnavailable(f"Spark has no database {target.database!r} (known: {', '.join(known)})")
    return backend


def _stopped(backend: Any) -> bool:
    session = backend._session
    # A classic session whose SparkContext was stopped cannot run queries again; Spark Connect has no context.
    context = getattr(session, "_sc", None)
    return context is not None and context._jsc is None
