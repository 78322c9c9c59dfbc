"""The Customer 360 benchmark's data set, written into SQLite (``executemany``) or PostgreSQL (``COPY``).

Both backends get the same rows from the same generators (same seed, same random draws), into the real schema
(``kizuna.db.make_engine`` + ``migrate``). Secondary indexes are dropped for the load and rebuilt from their own
definitions afterwards. A built database is reused while its parameters match: SQLite keeps them in a JSON file
beside the database, PostgreSQL in a comment on the ``customers`` table, so data and marker cannot drift apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

BUILD_FORMAT = 2  # bump when the generated data changes, so old databases are rebuilt
CHUNK = 200_000
MARK = "kizuna customer360 benchmark "

FAMILY = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
]  # fmt: skip
GIVEN = [
    ("翔太", "ショウタ"), ("陽菜", "ヒナ"), ("大翔", "ヒロト"), ("結衣", "ユイ"), ("蓮", "レン"),
    ("美咲", "ミサキ"), ("悠真", "ユウマ"), ("さくら", "サクラ"), ("健", "ケン"), ("花子", "ハナコ"),
]  # fmt: skip
PREFECTURES = [
    ("東京都", "渋谷区"), ("大阪府", "大阪市北区"), ("愛知県", "名古屋市中区"), ("福岡県", "福岡市博多区"),
    ("北海道", "札幌市中央区"), ("神奈川県", "横浜市西区"), ("京都府", "京都市下京区"),
]  # fmt: skip
EVENT_TYPES = [
    ("page_view", "web"),
    ("page_view", "web"),
    ("page_view", "web"),
    ("email_open", "email"),
    ("email_click", "email"),
    ("store_visit", "store"),
    ("line_message", "line"),
    ("cart_add", "web"),
]
TAGS = ["VIP", "newsletter", "line-friend", "store-member", "wholesale", "lapsed", "campaign-2025", "app-user"]
BIG = ("customers", "customer_identities", "customer_tags", "events", "orders", "order_lines", "consents", "notes")


@dataclass(frozen=True)
class Params:
    customers: int
    events: int
    orders: int
    seed: int

    def marker(self) -> dict[str, int]:
        return {"customers": self.customers, "events": self.events, "orders": self.orders, "seed": self.seed,
                "format": BUILD_FORMAT}  # fmt: skip

    @property
    def name(self) -> str:
        return f"c360_c{self.customers}_e{self.events}_o{self.orders}_s{self.seed}_v{BUILD_FORMAT}"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: Iterable[tuple]


def _ts_pool(rng: random.Random, size: int, start: dt.datetime, days: int) -> list[str]:
    """SQLAlchemy's SQLite DATETIME text (UTC, naive); PostgreSQL reads the same text in a UTC session."""
    span = days * 86400
    return [
        (start + dt.timedelta(seconds=rng.randrange(span))).strftime("%Y-%m-%d %H:%M:%S.000000") for _ in range(size)
    ]


def _skewed(rng: random.Random, n: int) -> int:
    """A customer id: 70% uniform, 30% power-law towards low ids (customer 1 gets ~1% of everything)."""
    if rng.random() < 0.7:
        return rng.randrange(n) + 1
    return int(n * rng.random() ** 4) + 1


def tables(p: Params) -> Iterator[Table]:
    """Every table's rows, in load order. Consume each table's rows before asking for the next table: the
    generators share one random stream (so both backends get identical data) and order lines come from orders.
    """
    customers = p.customers
    rng = random.Random(p.seed)
    now = dt.datetime(2026, 11, 1)
    stamps = _ts_pool(rng, 1 << 18, now - dt.timedelta(days=730), 730)
    created = _ts_pool(rng, 1 << 14, now - dt.timedelta(days=1500), 770)
    n_companies = max(1, customers // 100)
    yield Table(
        "companies",
        ("id", "name", "name_kana", "domain", "industry", "country", "attributes", "created_at", "updated_at",
         "version"),
        (
            (i, f"株式会社ベンチ{i}", f"ベンチ{i}", f"bench{i}.example.jp", "retail", "JP", "{}", c, c, 1)
            for i in range(1, n_companies + 1)
            for c in (created[i % len(created)],)
        ),
    )  # fmt: skip
    yield Table("tags", ("id", "name"), list(enumerate(TAGS, start=1)))

    def customer_rows() -> Iterator[tuple]:
        for i in range(1, customers + 1):
            fam, fam_k = FAMILY[i % len(FAMILY)]
            giv, giv_k = GIVEN[(i // 10) % len(GIVEN)]
            pref, city = PREFECTURES[i % len(PREFECTURES)]
            merged = i % 1000 == 0 and i > 1
            c = created[i % len(created)]
            yield (
                i, f"C{i:08d}", f"user{i}@example.jp", f"+8190{i:08d}" if i % 2 else None, fam, giv, fam_k, giv_k,
                f"{fam} {giv}", f"{fam_k} {giv_k}", f"{1950 + i % 55}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                ("female", "male", "other", "unknown")[i % 4], f"{100 + i % 900:03d}-{i % 10000:04d}", pref, city,
                f"{1 + i % 9}-{1 + i % 30}-{1 + i % 20}", "JP", (i % n_companies) + 1 if i % 10 == 0 else None,
                ("customer", "lead", "prospect", "former")[i % 4], "Asia/Tokyo", "ja", "bench",
                '{"rank": "gold", "points": 1200}' if i % 5 == 0 else "{}", "merged" if merged else "active",
                i - 1 if merged else None, c, c, 1,
            )  # fmt: skip

    yield Table(
        "customers",
        ("id", "external_id", "email", "phone", "family_name", "given_name", "family_name_kana", "given_name_kana",
         "full_name", "full_name_kana", "birth_date", "gender", "postal_code", "prefecture", "city", "address_line",
         "country", "company_id", "lifecycle_stage", "timezone", "locale", "source", "attributes", "status",
         "merged_into_id", "created_at", "updated_at", "version"),
        customer_rows(),
    )  # fmt: skip

    def identity_rows() -> Iterator[tuple]:
        for i in range(1, customers + 1):
            c = created[i % len(created)]
            yield (i, "email", f"user{i}@example.jp", c)
            yield (i, "external_id", f"C{i:08d}", c)
            if i % 2:
                yield (i, "phone", f"+8190{i:08d}", c)

    yield Table("customer_identities", ("customer_id", "kind", "value", "created_at"), identity_rows())

    def tag_rows() -> Iterator[tuple]:
        for i in range(3, customers + 1, 3):
            first = i % len(TAGS) + 1
            yield (i, first)
            if i % 2 == 0:
                yield (i, (first % len(TAGS)) + 1)

    yield Table("customer_tags", ("customer_id", "tag_id"), tag_rows())

    def event_rows() -> Iterator[tuple]:
        r = rng.random
        pool, n_pool = stamps, len(stamps)
        props = [f'{{"path": "/p/{k}", "ref": "bench"}}' for k in range(512)]
        for _ in range(p.events):
            kind, channel = EVENT_TYPES[int(r() * 8)]
            at = pool[int(r() * n_pool)]
            cid = int(r() * customers) + 1 if r() < 0.7 else int(customers * r() ** 4) + 1
            yield (cid, kind, channel, at, at, "bench", props[int(r() * 512)])

    yield Table(
        "events", ("customer_id", "type", "channel", "occurred_at", "received_at", "source", "properties"), event_rows()
    )
    lines: list[tuple] = []

    def order_rows() -> Iterator[tuple]:
        for oid in range(1, p.orders + 1):
            cid = _skewed(rng, customers)
            at = stamps[rng.randrange(len(stamps))]
            total = 0
            for line_no in range(1, rng.randint(1, 3) + 1):
                qty = rng.randint(1, 3)
                price = rng.choice((480, 980, 1980, 3300, 12800))
                total += qty * price
                sku = f"SKU-{rng.randrange(5000):05d}"
                lines.append((oid, cid, line_no, sku, qty, float(price), float(qty * price)))
            yield (oid, f"O{oid:09d}", cid, at, "completed", ("store", "web")[oid % 2], "渋谷店", "JPY", float(total),
                   "{}", at, at, 1)  # fmt: skip

    yield Table(
        "orders",
        ("id", "external_id", "customer_id", "ordered_at", "status", "channel", "store", "currency", "total_amount",
         "attributes", "created_at", "updated_at", "version"),
        order_rows(),
    )  # fmt: skip
    yield Table("order_lines", ("order_id", "customer_id", "line_no", "sku", "quantity", "unit_price", "amount"), lines)
    yield Table(
        "consents",
        ("customer_id", "channel", "purpose", "status", "method", "evidence", "recorded_at", "recorded_by"),
        (
            (i, ("email", "line")[i % 2], "marketing", ("granted", "withdrawn")[i % 7 == 0], "web_form",
             "signup form v3", stamps[i % len(stamps)], "system:bench")
            for i in range(1, customers + 1, 10)
        ),
    )  # fmt: skip
    yield Table(
        "notes",
        ("customer_id", "body", "created_at", "updated_at", "version"),
        (
            (i, "電話で問い合わせ。次回来店時にサンプルを渡す。", s, s, 1)
            for i in range(1, customers + 1, 20)
            for s in (stamps[(i * 7) % len(stamps)],)
        ),
    )
    yield Table(
        "customer_merges",
        ("survivor_id", "merged_id", "reason", "snapshot", "merged_at", "actor"),
        ((i - 1, i, "duplicate email", "{}", stamps[i % len(stamps)], "system:bench")
         for i in range(1000, customers + 1, 1000)),
    )  # fmt: skip


def _chunks(rows: Iterable[tuple], size: int = CHUNK) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _timed(label: str, load: Callable[[], int]) -> None:
    started = time.perf_counter()
    count = load()
    took = time.perf_counter() - started
    print(f"  {label:<20} {count:>11,} rows in {took:6.1f} s ({count / max(took, 1e-9):,.0f} rows/s)", flush=True)


def _migrate(url: str) -> None:
    from kizuna.db import make_engine, migrate

    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


# -------------------------------------------------------------------------------------------- SQLite


def sqlite_database(data: Path, p: Params, *, rebuild: bool) -> str:
    """The URL of a SQLite database with these parameters, built unless one already exists."""
    db, marker = data / f"{p.name}.db", data / f"{p.name}.json"
    if rebuild or not db.exists() or not marker.exists() or json.loads(marker.read_text()) != p.marker():
        marker.unlink(missing_ok=True)
        build_sqlite(db, p)
        marker.write_text(json.dumps(p.marker()))
    else:
        print(f"reusing {db} ({db.stat().st_size / 1e9:.2f} GB)")
    return f"sqlite:///{db}"


def build_sqlite(path: Path, p: Params) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    print(f"building {path.name}: {p.customers:,} customers, {p.events:,} events, {p.orders:,} orders", flush=True)
    _migrate(f"sqlite:///{path}")
    started = time.perf_counter()
    con = sqlite3.connect(path, isolation_level="DEFERRED")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    con.execute("PRAGMA temp_store=MEMORY")
    marks = ",".join("?" * len(BIG))
    indexes = con.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN ({marks})", BIG
    ).fetchall()
    for name, _ in indexes:  # secondary indexes are rebuilt after the load, from their own CREATE statements
        con.execute(f'DROP INDEX "{name}"')
    for table in tables(p):
        sql = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({','.join('?' * len(table.columns))})"
        table = _in_cents(table)

        def load(table: Table = table, sql: str = sql) -> int:
            count = 0
            for batch in _chunks(table.rows):
                con.executemany(sql, batch)
                count += len(batch)
            con.commit()
            return count

        _timed(table.name, load)
    t = time.perf_counter()
    for _, sql in indexes:
        con.execute(sql)
    con.commit()
    print(f"  {len(indexes)} indexes rebuilt in {time.perf_counter() - t:.1f} s", flush=True)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    print(f"built in {time.perf_counter() - started:.0f} s ({path.stat().st_size / 1e9:.2f} GB)", flush=True)


# Money columns: SQLite keeps them as integer cents (kizuna.db's money type), PostgreSQL as NUMERIC.
MONEY = {"orders": ("total_amount",), "order_lines": ("unit_price", "amount")}


def _in_cents(table: Table) -> Table:
    money = [i for i, name in enumerate(table.columns) if name in MONEY.get(table.name, ())]
    if not money:
        return table

    def rows() -> Iterator[tuple]:
        for row in table.rows:
            row = list(row)
            for i in money:
                row[i] = round(row[i] * 100)
            yield tuple(row)

    return Table(table.name, table.columns, rows())


def prewarm_sqlite(url: str) -> None:
    """Read the file once. The target is a warm server, and this machine's kernel pages out memory not touched
    for a while (DAMON "pageout"): without this the first minutes measure random disk reads."""
    path = Path(url.split("///", 1)[1])
    started = time.perf_counter()
    with path.open("rb") as f:
        while f.read(16 << 20):
            pass
    print(f"read {path.name} into the page cache in {time.perf_counter() - started:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------- PostgreSQL


def _pg(url: str, *, autocommit: bool = False):  # noqa: ANN202 - psycopg is only imported when asked for
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=autocommit)


def postgresql_database(url: str, p: Params, *, schema: str, rebuild: bool) -> str:
    """A URL of ``url``'s database whose search path is ``schema``, holding the data set with these parameters;
    built (the schema dropped and made again) unless it already does.

    The benchmark owns only that schema, so the database can be shared (the test suite drops ``public``).
    A schema that holds tables this benchmark did not build is never dropped.
    """
    from sqlalchemy.engine import make_url

    url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with _pg(url, autocommit=True) as con:
        tables_there = con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)).fetchone()[0]
        found = con.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f'"{schema}".customers',)
        ).fetchone()
    comment = found[0] if found else None
    ours = bool(comment and comment.startswith(MARK))
    if tables_there and not ours:
        raise SystemExit(f"schema {schema} holds tables that this benchmark did not build; name another (--pg-schema)")
    if not rebuild and ours and json.loads(comment[len(MARK) :]) == p.marker():
        print(f"reusing PostgreSQL schema {schema} ({p.name})")
        return url
    build_postgresql(url, p, schema=schema)
    return url


def build_postgresql(url: str, p: Params, *, schema: str) -> None:
    from psycopg import sql

    print(f"building PostgreSQL {p.name}: {p.customers:,} customers, {p.events:,} events", flush=True)
    with _pg(url, autocommit=True) as con:
        con.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    _migrate(url)
    started = time.perf_counter()
    with _pg(url) as con:
        # UTC session: the generated timestamps are UTC text. Foreign keys are triggers in PostgreSQL; the
        # "replica" role skips them for the load (the generator only writes references that exist).
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET session_replication_role = replica")
        con.execute("SET maintenance_work_mem = '512MB'")
        indexes = con.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY(%s)"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
            (list(BIG),),
        ).fetchall()
        for name, _ in indexes:  # rebuilt after the load from their own definitions, as on SQLite
            con.execute(f'DROP INDEX "{name}"')
        for table in tables(p):

            def load(table: Table = table) -> int:
                count = 0
                with con.cursor().copy(f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN") as copy:
                    # COPY's text format written directly (4x faster here than write_row per row): the generated
                    # values hold no tab, newline or backslash, so only NULL needs spelling out.
                    for batch in _chunks(table.rows, 20_000):
                        copy.write(
                            "".join(["\t".join([r"\N" if v is None else str(v) for v in row]) + "\n" for row in batch])
                        )
                        count += len(batch)
                con.commit()
                return count

            _timed(table.name, load)
        t = time.perf_counter()
        for _, definition in indexes:
            con.execute(definition)
        # Explicit ids were loaded, so move each sequence past them (the benchmark's admin and token come next).
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND column_name = 'id' AND pg_get_serial_sequence(table_name, 'id') IS NOT NULL"
        ).fetchall():
            con.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), coalesce((SELECT max(id) FROM {name}), 0) + 1,"
                " false)"
            )
        # COMMENT takes no bound parameters; the literal is quoted by psycopg.
        con.execute(sql.SQL("COMMENT ON TABLE customers IS {}").format(sql.Literal(MARK + json.dumps(p.marker()))))
        con.commit()
        print(f"  {len(indexes)} indexes rebuilt in {time.perf_counter() - t:.1f} s", flush=True)
    with _pg(url, autocommit=True) as con:
        t = time.perf_counter()
        # Statistics for the planner and a visibility map for index-only scans.
        for table in ("companies", "tags", *BIG, "customer_merges"):
            con.execute(f"VACUUM ANALYZE {table}")
        print(f"  VACUUM ANALYZE in {time.perf_counter() - t:.1f} s", flush=True)
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(f"built in {time.perf_counter() - started:.0f} s ({size / 1e9:.2f} GB)", flush=True)


def prewarm_postgresql(url: str) -> None:
    """Read every table and index of the data set into the OS page cache (``pg_prewarm``), for the same reason
    as the SQLite file is read: the figures are for a warm server."""
    started = time.perf_counter()
    with _pg(url, autocommit=True) as con:
        con.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        blocks = con.execute(
            "SELECT sum(pg_prewarm(c.oid, 'read')) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')"
        ).fetchone()[0]
    print(
        f"read {int(blocks) * 8192 / 1e9:.2f} GB of tables and indexes in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def analytics_arguments(parser: argparse.ArgumentParser) -> None:
    """The data set and backend options the analytics benchmarks share."""
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default="")
    parser.add_argument("--rebuild", action="store_true")


def analytics_store(args: argparse.Namespace, data: Path) -> str:
    """The URL of the analytics benchmarks' data set (built once; SQLite read into the page cache), set as
    ``KIZUNA_DATABASE_URL`` for the services the benchmark calls."""
    params = Params(customers=args.customers, events=args.events, orders=args.orders, seed=args.seed)
    data.mkdir(exist_ok=True)
    if args.database == "sqlite":
        url = sqlite_database(data, params, rebuild=args.rebuild)
        prewarm_sqlite(url)
    else:
        if "bench" not in args.pg_url:
            sys.exit("--pg-url must name a database whose name contains 'bench' (the run fills it)")
        url = postgresql_database(args.pg_url, params, schema="public", rebuild=args.rebuild)
    os.environ["KIZUNA_DATABASE_URL"] = url
    os.environ.setdefault("KIZUNA_DEFAULT_TIMEZONE", "Asia/Tokyo")
    return url
