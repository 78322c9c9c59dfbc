"""Events through the tracking API's /v1/batch (batches of 100, a real HTTP client) into SQLite or PostgreSQL.

Prints events/s and the p50/p99 batch latency, and beside them the floor measured in the same run: the same
event rows written by a bare executemany (the driver's, one statement and one commit per batch of the same
size) into the same table of the same database.

    .venv/bin/python benchmarks/ingest_batch.py                       # 1,000,000 events into SQLite
    .venv/bin/python benchmarks/ingest_batch.py --events 100000 --database both \
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_ingest

The server is ``uvicorn kizuna.app:create_app`` in another process; the client (httpx, ``--connections``
keep-alive connections) sends prepared bodies, so its own CPU stays small, but it shares the machine's cores.
``--pg-url`` names a database that the run empties, so its name must contain ``bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
NAMES = ("Product Viewed", "Product Added", "Order Completed", "Checkout Started", "Signed Up")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(events: int, batch: int, visitors: int) -> list[bytes]:
    """Prepared request bodies: page and track calls of ``visitors`` browsers, one in ten of them signed in."""
    rng = random.Random(7)
    now = dt.datetime.now(dt.UTC)
    out = []
    for start in range(0, events, batch):
        messages = []
        for i in range(start, min(events, start + batch)):
            v = rng.randrange(visitors)
            m = {
                "type": "page" if i % 3 == 0 else "track",
                "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
                "anonymousId": f"anon-{v}",
                "timestamp": (now - dt.timedelta(seconds=rng.randrange(3600))).isoformat(),
                "context": {"library": {"name": "analytics.js", "version": "5.0.0"}},
            }
            if v % 10 == 0:
                m["userId"] = f"user-{v}"
            if m["type"] == "page":
                m["name"] = "Product"
                m["properties"] = {"path": f"/products/{v % 500}", "title": "商品ページ"}
            else:
                m["event"] = NAMES[i % len(NAMES)]
                m["properties"] = {"sku": f"SKU-{i % 1000}", "price": 1980, "currency": "JPY"}
            messages.append(m)
        out.append(json.dumps({"batch": messages, "sentAt": now.isoformat()}).encode())
    return out


async def send(url: str, key: str, payloads: list[bytes], connections: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, auth=(key, ""), limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                r = await client.post("/v1/batch", content=body, headers={"Content-Type": "application/json"})
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200 or r.json()["rejected"]:
                    raise SystemExit(f"batch refused: {r.status_code} {r.text[:300]}")

        await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies


def prepare(url: str) -> str:
    """An empty, migrated database with one source; returns its write key."""
    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, migrate, new_session
    from kizuna.ingest import sources

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as c:
            c.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    with new_session(engine) as s:
        _, key = sources.create_source(s, actor=Actor.system("bench"), name="bench")
        s.commit()
    engine.dispose()
    return key


def floor(url: str, batch: int) -> tuple[float, int, float]:
    """The stored event rows again, by a bare executemany per batch with a commit each; (seconds, rows, CPU
    seconds of this process, which on SQLite is the database's own work)."""
    from kizuna.db import make_engine
    from kizuna.events.models import Event
    from kizuna.imports.bulk import tuple_insert

    names = ["external_id", "customer_id", "anonymous_id", "type", "channel", "occurred_at", "received_at"]
    names += ["source", "properties"]
    engine = make_engine(url)
    table = Event.__table__
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(select(*(table.c[n] for n in names)).order_by(table.c.id))]
        c.execute(text("DELETE FROM outbox_deliveries"))
        c.execute(text("DELETE FROM outbox"))
        c.execute(text("DELETE FROM events"))
        c.commit()
    # Bound before the clock starts: the floor is the database's and the driver's part alone.
    batches = [tuple_insert(engine.dialect, table, names, rows[i : i + batch]) for i in range(0, len(rows), batch)]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started, cpu = time.perf_counter(), time.process_time()
        for statement, params in batches:
            cursor.executemany(statement, params)
            raw.commit()
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        raw.close()
        engine.dispose()
    return took, len(rows), cpu


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its live children (uvicorn's workers) have used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return own + sum(_cpu_seconds(int(kid)) for kid in kids)


def run(database: str, url: str, args: argparse.Namespace, payloads: list[bytes]) -> None:
    key = prepare(url)
    port = _free_port()
    env = {**os.environ, "KIZUNA_DATABASE_URL": url, "KIZUNA_HOME": str(DATA / "home")}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "kizuna.app:create_app", "--factory", "--port", str(port)]
        + ["--log-level", "warning", "--no-access-log", "--workers", str(args.server_workers)],
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        if args.server_workers > 1:
            time.sleep(3)  # every worker process up (the first one answers /healthz alone)
        started, server_cpu, client_cpu = time.perf_counter(), _cpu_seconds(server.pid), time.process_time()
        latencies = asyncio.run(send(base, key, payloads, args.connections))
        took, server_cpu = time.perf_counter() - started, _cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    floor_took, stored, floor_cpu = floor(url, args.batch)
    print(
        f"{database:10s} {args.events:>9,} events  {args.events / took:>9,.0f} events/s  "
        f"p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  server CPU {server_cpu / len(payloads) * 1000:.1f} ms a batch "
        f"(client {client_cpu / len(payloads) * 1000:.1f})  "
        f"|  floor (bare executemany of the {stored:,} rows, "
        f"{args.batch} a commit): {stored / floor_took:>9,.0f} rows/s, "
        f"{floor_cpu / max(1, stored) * args.batch * 1000:.1f} ms CPU a batch",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--server-workers", type=int, default=1, help="uvicorn worker processes (kizuna serve --workers)"
    )
    parser.add_argument("--visitors", type=int, default=0, help="distinct anonymous ids (default: events / 50)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench_ingest")
    args = parser.parse_args()
    visitors = args.visitors or max(1, args.events // 50)
    DATA.mkdir(exist_ok=True)
    payloads = bodies(args.events, args.batch, visitors)
    print(f"{len(payloads):,} batches of {args.batch} prepared ({visitors:,} visitors)", flush=True)
    if args.database in ("sqlite", "both"):
        path = DATA / "ingest.db"
        for p in DATA.glob("ingest.db*"):
            p.unlink()
        run("sqlite", f"sqlite:///{path}", args, payloads)
    if args.database in ("postgresql", "both"):
        if "bench" not in args.pg_url.rsplit("/", 1)[-1]:
            raise SystemExit("--pg-url must name a database whose name contains 'bench' (the run empties it)")
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", args.pg_url.rsplit("/", 1)[-1]],
            stderr=subprocess.DEVNULL,
            check=False,
        )
        run("postgresql", args.pg_url, args, payloads)
    shutil.rmtree(DATA / "home", ignore_errors=True)


if __name__ == "__main__":
    main()
