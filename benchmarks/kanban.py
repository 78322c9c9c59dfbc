"""Kanban speed: the board of a pipeline with 10,000 open deals renders in under 300 ms of server time.

Goal (issue 16, "Speed"). The data: one pipeline (the default one) with 10,000 open deals spread over its four
open stages, linked to 2,000 customers and 200 companies, owned by 20 reps. ``GET /deals/board`` is requested
through the real app in this process (TestClient, signed in through the login form); server time is measured by
an ASGI middleware from the request's arrival to the last byte of the answer.

The board shows per column the count and the totals (one GROUP BY) and only the first 20 cards (one indexed
query per stage); "load more" asks for the rest. Two floors, measured in the same run:
  floor A: the same statements the page sends, replayed through the bare driver, plus a trivial template over
           the rows (what the page cannot go below);
  floor B: a bare SELECT of all 10,000 open deals with their customer, company and owner, plus the same
           trivial template over every row (what a board that rendered every card would start from).

    .venv/bin/python benchmarks/kanban.py                                   # SQLite (a scratch file)
    .venv/bin/python benchmarks/kanban.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_MS = 300.0
EMAIL = "bench-kanban@example.com"
PASSWORD = "bench-kanban-password-not-secret"


class ServerTimer:
    """ASGI middleware: the server time of the last HTTP request (arrival to the end of the response body)."""

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


def build(engine: Any, deals: int) -> None:
    from sqlalchemy import insert

    from kizuna.auth import service as auth
    from kizuna.auth.permissions import Actor
    from kizuna.customers.models import Company, Customer
    from kizuna.db import transaction
    from kizuna.sales import pipelines
    from kizuna.sales.models import Deal

    rng = random.Random(16)
    system = Actor.system("bench")
    with transaction(engine) as s:
        auth.create_user(s, actor=system, email=EMAIL, password=PASSWORD, role="sales", name="ベンチ 担当")
        reps = [
            auth.create_user(
                s, actor=system, email=f"rep{i}@example.com", password=PASSWORD, role="sales", name=f"営業 {i}"
            )
            for i in range(20)
        ]
        s.flush()
        s.execute(insert(Company), [{"name": f"株式会社ベンチ{i:03d}", "attributes": {}} for i in range(200)])
        s.execute(
            insert(Customer),
            [
                {"family_name": "山田", "given_name": f"太郎{i}", "full_name": f"山田 太郎{i}", "attributes": {}}
                for i in range(2000)
            ],
        )
        stages = [st for st in pipelines.stages_of(s, pipelines.default_pipeline(s).id) if st.kind == "open"]
        today = dt.date(2030, 1, 1)
        s.execute(
            insert(Deal),
            [
                {
                    "name": f"案件 {i:05d}",
                    "pipeline_id": stages[0].pipeline_id,
                    "stage_id": stages[i % len(stages)].id,
                    "customer_id": rng.randint(1, 2000),
                    "company_id": rng.randint(1, 200),
                    "amount": rng.randint(1, 5000) * 1000,
                    "currency": "JPY",
                    "probability": stages[i % len(stages)].probability,
                    "expected_close_date": today + dt.timedelta(days=rng.randint(0, 365)),
                    "owner_id": reps[i % len(reps)].id,
                    "attributes": {},
                    "version": 1,
                }
                for i in range(deals)
            ],
        )


def sign_in(client: Any) -> None:
    html = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token, "next": "/home"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def floors(engine: Any, statements: list[tuple[str, Any]], requests: int) -> tuple[list[float], list[float]]:
    """Floor A (the page's own statements through the bare driver + a trivial template) and floor B (every open
    deal with its names through the bare driver + the same template)."""
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(
        "<ol>{% for r in rows %}<li>{{ r[0] }} {{ r[1] }} {{ r[2] }}</li>{% endfor %}</ol>"
    )
    everything = (
        "SELECT d.id, d.name, d.amount, d.expected_close_date, c.full_name, co.name, u.name FROM deals d "
        "JOIN pipeline_stages s ON s.id = d.stage_id LEFT JOIN customers c ON c.id = d.customer_id "
        "LEFT JOIN companies co ON co.id = d.company_id LEFT JOIN users u ON u.id = d.owner_id "
        "WHERE s.kind = 'open' ORDER BY d.stage_id, d.expected_close_date, d.id"
    )
    raw = engine.raw_connection()
    a: list[float] = []
    b: list[float] = []
    try:
        cursor = raw.cursor()
        for _ in range(requests):
            started = time.perf_counter()
            rows: list[Any] = []
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                rows.extend(cursor.fetchall())
            template.render(rows=rows)
            a.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            cursor.execute(everything)
            template.render(rows=cursor.fetchall())
            b.append((time.perf_counter() - started) * 1000)
    finally:
        raw.close()
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", help="a PostgreSQL database to use (emptied first); default: a SQLite file")
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("KIZUNA_HOME", tempfile.mkdtemp(prefix="kizuna-kanban-"))
    from sqlalchemy import event, text
    from starlette.testclient import TestClient

    from kizuna.app import create_app
    from kizuna.db import make_engine, migrate

    if args.pg_url:
        engine = make_engine(args.pg_url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        engine = make_engine(f"sqlite:///{Path(os.environ['KIZUNA_HOME']) / 'kanban.db'}")
    migrate(engine)
    started = time.perf_counter()
    build(engine, args.deals)
    print(f"{engine.dialect.name}: {args.deals:,} open deals built in {time.perf_counter() - started:.1f} s")
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))

    app = create_app(engine)
    timer = ServerTimer(app)
    statements: list[tuple[str, Any]] = []
    recording = {"on": False}

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, ARG001
        if recording["on"] and "deals" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    with TestClient(timer, base_url="http://testserver") as client:
        sign_in(client)
        client.get("/deals/board")  # warm: templates compiled, statements cached
        recording["on"] = True
        r = client.get("/deals/board")
        recording["on"] = False
        assert r.status_code == 200 and r.text.count('data-testid="deal-card"') == 80, "unexpected board"
        times = []
        for _ in range(args.requests):
            r = client.get("/deals/board")
            assert r.status_code == 200
            times.append(timer.last_ms)
    a, b = floors(engine, statements, args.requests)

    def line(name: str, values: list[float]) -> str:
        p95 = sorted(values)[max(0, int(len(values) * 0.95) - 1)]
        return f"  {name:<48} p50 {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms"

    print(f"GET /deals/board, {args.requests} requests ({len(statements)} statements on deals per page):")
    print(line("server time of the page", times))
    print(line("floor A: its statements, bare driver + template", a))
    print(line("floor B: all open deals, bare driver + template", b))
    p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
    print(f"goal: p95 under {GOAL_MS:.0f} ms -> {'met' if p95 < GOAL_MS else 'NOT met'} ({p95:.1f} ms)")


if __name__ == "__main__":
    main()
