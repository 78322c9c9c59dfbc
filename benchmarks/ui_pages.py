"""UI page speed on the 1M-customer benchmark database: list, 360 and company pages under 150 ms server time.

Goal (issue 12, "Speed"): the customer list, the customer 360 page and the company page render in under
150 ms of server time on the Customer 360 benchmark's data set (1,000,000 customers, 10,000,000 events; built
once by ``customer360_data``). Each page is requested through the real app in this process (FastAPI's
TestClient, signed in through the login form as a user would be); server time is measured by an ASGI
middleware around the app, from the request's arrival to the last byte of the answer, so the client's own
work is not counted. Verdict per page: p95 below 150 ms.

The floor: every SQL statement a page sends is recorded (an engine listener) and the same statements with the
same parameters are replayed through the bare driver (``sqlite3`` / ``psycopg``) on a connection of their
own, in the same run. What a page costs above its floor is SQLAlchemy, Python and the template; the floor
tells a slow machine from a slow page.

    .venv/bin/python benchmarks/ui_pages.py                       # SQLite, full size (builds data once)
    .venv/bin/python benchmarks/ui_pages.py --database postgresql --pg-url postgresql+psycopg://.../kz_bench
    .venv/bin/python benchmarks/ui_pages.py --customers 20000 --events 200000 --requests 10   # quick
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
import customer360_data as data  # noqa: E402

GOAL_MS = 150.0
EMAIL = "bench-ui@example.com"
PASSWORD = "bench-ui-password-not-secret"


class ServerTimer:
    """ASGI middleware: the server time of each HTTP request (arrival to the end of the response body)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_ms = (time.perf_counter() - started) * 1000

        await self.app(scope, receive, timed_send)


class Recorder:
    """The statements an engine sends while ``on`` (the floor replays them)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, ARG002
        if self.on:
            self.statements.append((statement, parameters))


def ensure_user(url: str) -> None:
    from kizuna.auth import service as auth
    from kizuna.db import make_engine, transaction

    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            auth.ensure_admin(session, email=EMAIL, password=PASSWORD)
    finally:
        engine.dispose()


def signed_in_client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://testserver")
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token, "next": "/customers"},
        follow_redirects=False,
    )
    if r.status_code != 303:
        raise SystemExit(f"sign-in failed: {r.status_code}")
    return client


def link(html: str, rel: str) -> str:
    match = re.search(rf'href="([^"]*)" rel="{rel}"', html)
    if not match:
        raise SystemExit(f"no {rel} link on the page")
    return match.group(1).replace("&amp;", "&")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": statistics.median(ordered), "p95": pick(0.95), "max": ordered[-1]}


class Floor:
    """The bare driver on a connection of its own: sends recorded statements and reads every row."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.con: Any = sqlite3.connect(url.split("///", 1)[1], check_same_thread=False)
            # The app's connection settings (kizuna.db._sqlite_pragmas).
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-65536"):
                self.con.execute(f"PRAGMA {pragma}")
        else:
            import psycopg

            from kizuna.db import make_engine

            # The DSN the app's engine connects with (search_path and all).
            engine = make_engine(url)
            self.con = psycopg.connect(**engine.dialect.create_connect_args(engine.url)[1])
            engine.dispose()

    def ms(self, statements: list[tuple[str, Any]]) -> float:
        started = time.perf_counter()
        if self.sqlite:
            for sql, params in statements:
                self.con.execute(sql, params).fetchall()
        else:
            with self.con.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                    if cur.description:
                        cur.fetchall()
            self.con.rollback()
        return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", help="with --database postgresql: a database this benchmark may write to")
    p.add_argument("--pg-schema", default="c360_bench")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--orders", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--requests", type=int, default=30, help="measured requests per page (after 3 warm-up ones)")
    args = p.parse_args(argv)
    orders = args.orders if args.orders is not None else args.customers // 2
    params = data.Params(customers=args.customers, events=args.events, orders=orders, seed=args.seed)
    DATA.mkdir(parents=True, exist_ok=True)
    if args.database == "sqlite":
        url = data.sqlite_database(DATA, params, rebuild=False)
    else:
        if not args.pg_url:
            raise SystemExit("--database postgresql needs --pg-url")
        url = data.postgresql_database(args.pg_url, params, schema=args.pg_schema, rebuild=False)
    home = DATA / "home"
    home.mkdir(exist_ok=True)
    os.environ["KIZUNA_HOME"] = str(home)
    os.environ["KIZUNA_DATABASE_URL"] = url
    from kizuna.db import make_engine, migrate

    # A data set built by an older checkout gets this one's schema, as a deployment would (a no-op otherwise).
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    ensure_user(url)
    (data.prewarm_sqlite if args.database == "sqlite" else data.prewarm_postgresql)(url)

    from kizuna.app import create_app

    engine = make_engine(url)
    app = create_app(engine)
    recorder = Recorder(engine)
    timer = ServerTimer(app)
    client = signed_in_client(timer)
    rng = random.Random(7)
    floor = Floor(url)

    has_company_page = client.get("/companies/1").status_code == 200
    first = client.get("/customers").text
    by_name = client.get("/customers?sort=full_name").text
    pages: list[tuple[str, Callable[[], str]]] = [
        ("list: default (newest first)", lambda: "/customers"),
        ("list: name search 佐藤翔太 (1%)", lambda: "/customers?q=佐藤翔太"),
        ("list: name search 山田充 (no match)", lambda: "/customers?q=山田充"),
        ("list: kana search サトウ (10%)", lambda: "/customers?q=サトウ"),
        ("list: filter stage=lead", lambda: "/customers?lifecycle_stage=lead"),
        ("list: filter tag=VIP", lambda: "/customers?tag=VIP"),
        ("list: sorted by name", lambda: "/customers?sort=full_name"),
        ("list: page 2", lambda: link(first, "next")),
        ("list: page 2 sorted by name", lambda: link(by_name, "next")),
        ("list: 200 rows", lambda: "/customers?size=200"),
        ("360: customer 1 (heaviest)", lambda: "/customers/1"),
        ("360: random customer", lambda: f"/customers/{rng.randrange(1, args.customers + 1)}"),
    ]
    if has_company_page:
        pages.append(("company page: random", lambda: f"/companies/{rng.randrange(1, args.customers // 100 + 1)}"))
    else:
        pages.append(("companies list (no /companies/{id} yet)", lambda: "/companies"))
        companies = client.get("/companies").text
        pages.append(("companies list page 2", lambda: link(companies, "next")))

    print(f"{args.database}: {args.customers:,} customers; {args.requests} requests per page after 3 warm-up")
    print(f"{'page':<44} {'p50':>7} {'p95':>7} {'max':>7}   {'floor p50':>9}  verdict (p95 < {GOAL_MS:.0f} ms)")
    failed = 0
    for name, path_of in pages:
        for _ in range(3):
            r = client.get(path_of())
            if r.status_code != 200:
                raise SystemExit(f"{name}: {r.request.url} answered {r.status_code}")
        times = []
        floors = []
        for _ in range(args.requests):
            path = path_of()
            recorder.statements, recorder.on = [], True
            client.get(path)
            recorder.on = False
            times.append(timer.last_ms)
            floors.append(floor.ms(recorder.statements))
        s = percentiles(times)
        ok = s["p95"] < GOAL_MS
        failed += not ok
        print(
            f"{name:<44} {s['p50']:7.1f} {s['p95']:7.1f} {s['max']:7.1f}   {statistics.median(floors):9.1f}"
            f"  {'PASS' if ok else 'FAIL'}",
            flush=True,
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print("ALL PASS" if not failed else f"{failed} page(s) FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
