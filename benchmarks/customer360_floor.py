"""The floor of the Customer 360 read: the endpoints' own SQL through a bare driver, at the same concurrency.

What "the same SQL" means: the statements are Kizuna's own statement objects (``service._READ_QUERY``,
``service._RESOLVE_QUERY``, ``timeline._page_query``, the timeline loaders' selects) compiled by SQLAlchemy for
the backend's dialect once, then sent with ``sqlite3`` or ``psycopg`` directly, in the order and with the
parameters the services use (merges followed, a timeline page of 50 + 1 rows, each kind's rows loaded by id).
``check_same_statements`` proves it before every run: it records what the real app sends for a few customers
(in process, through an engine listener) and what the floor sends for them, and stops the run if they differ.

How concurrency is modelled: 32 clients (wrk's connections) keep one request each outstanding at all times,
sending the next as soon as the previous one is answered, alternating the two endpoints with uniformly random
customer ids, like the wrk script. They are served by as many processes as the server has workers (2), each
with its own connection opened as the app opens it (the app's SQLite pragmas; psycopg in a transaction that
ends with a rollback, as the pool's reset does), each serving its 16 clients first come, first served, as a
worker's event loop does. A request's latency is from when its client sent it to when it was answered, so it
includes the wait behind the other clients' requests, as wrk's latency does. The floor is thus a server that
spends no time outside the driver: what it leaves out is the web layer (HTTP, auth, the SQLAlchemy session and
result processing, Pydantic, JSON) and wrk's own CPU.

Rejected model: 32 processes, one per client. On 2 cores the kernel's scheduler then decides the percentiles
(a process runs many requests within its time slice, then waits for 31 others): p50 0.1 ms and p99 171 ms in a
trial run, a shape that measures the scheduler, not the queries, and no server of 2 workers has.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import re
import resource
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select

from kizuna.customers import service
from kizuna.customers import timeline as tl

PAGE = 50  # the timeline endpoint's default limit (the wrk script sends none)
MERGED_INTO = [c.name for c in service._READ_QUERY.selected_columns].index("merged_into_id")


def _by_ids(table: Any, columns: tuple[str, ...]) -> Any:
    chosen = [table.c[name] for name in ("id", *columns)]
    return select(*chosen).where(table.c.id.in_(bindparam("ids", expanding=True)))


def statements() -> dict[str, Any]:
    """The statements the two endpoints run, as the services build them."""
    found: dict[str, Any] = {
        "read": service._READ_QUERY,
        "resolve": service._RESOLVE_QUERY,
        "page": tl._page_query(tl.KINDS, None),
        "order_lines": tl._ORDER_LINES,
    }
    for source in tl.SOURCES:
        found[source.kind] = _by_ids(source.model.__table__, source.columns)
    return found


class Plan:
    """The compiled statements and how to bind them, for one dialect. Binding is cached per statement and
    number of ids, so that a request costs the driver's work and a few list look-ups, nothing of SQLAlchemy."""

    def __init__(self, dialect: Any) -> None:
        self.positional = dialect.positional
        self.compiled = {name: stmt.compile(dialect=dialect) for name, stmt in statements().items()}
        self._bound: dict[tuple[str, int], tuple[str, list[str], list[tuple[str, Any]]]] = {}

    def bind(self, name: str, values: dict[str, Any]) -> tuple[str, Any]:
        ids = values.get("ids")
        key = (name, len(ids) if ids is not None else -1)
        cached = self._bound.get(key)
        if cached is None:
            state = self.compiled[name].construct_expanded_state(values)
            names = state.positiontup if self.positional else list(state.parameters)
            how: list[tuple[str, Any]] = []
            for param in names:
                if param in values:
                    how.append(("v", param))
                elif ids is not None and re.fullmatch(r"ids_\d+", param):
                    how.append(("i", int(param[4:]) - 1))
                else:  # a literal of the statement (the kind names, OFFSET 0)
                    how.append(("c", state.parameters[param]))
            cached = self._bound[key] = (state.statement, list(names), how)
        sql, names, how = cached
        bound = [values[a] if k == "v" else ids[a] if k == "i" else a for k, a in how]  # type: ignore[index]
        return sql, (bound if self.positional else dict(zip(names, bound, strict=True)))


class Floor:
    """One client: a bare driver connection and the two endpoints' query sequences."""

    def __init__(self, url: str, plan: Plan, *, record: list | None = None) -> None:
        self.plan, self.record = plan, record
        if url.startswith("sqlite"):
            import sqlite3

            from kizuna.db import _sqlite_pragmas

            self.con = sqlite3.connect(url.split("///", 1)[1], timeout=15, check_same_thread=False)
            _sqlite_pragmas(self.con, None)  # the app's own connection settings
        else:
            import psycopg
            from sqlalchemy.engine import make_url

            self.con = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))

    def _run(self, name: str, **values: Any) -> list[tuple]:
        sql, params = self.plan.bind(name, values)
        if self.record is not None:
            self.record.append((sql, params))
        cur = self.con.execute(sql, params)
        rows = cur.fetchall()
        cur.close()
        return rows

    def _resolve(self, customer_id: int) -> int | None:
        seen, current = set(), customer_id
        while True:
            rows = self._run("resolve", customer_id=current)
            if not rows:
                return None
            if rows[0][1] is None or current in seen:
                return current
            seen.add(current)
            current = rows[0][1]

    def customer(self, customer_id: int) -> None:
        rows = self._run("read", customer_id=customer_id)
        merged_into = rows[0][MERGED_INTO] if rows else None
        if merged_into is not None:
            resolved = self._resolve(customer_id)
            self._run("read", customer_id=resolved)
        self.con.rollback()  # what the pool does when the session closes

    def timeline(self, customer_id: int) -> None:
        resolved = self._resolve(customer_id)
        if resolved is not None:
            rows = self._run("page", customer_id=resolved, rows=PAGE + 1)
            by_kind: dict[str, list[int]] = {}
            for kind, row_id, *_ in rows[:PAGE]:
                by_kind.setdefault(kind, []).append(row_id)
            for source in tl.SOURCES:
                ids = by_kind.get(source.kind)
                if ids and source.kind == "order":
                    self._run("order_lines", ids=ids)
                if ids:
                    self._run(source.kind, ids=ids)
        self.con.rollback()

    def close(self) -> None:
        self.con.close()


def _normalise(sql: str) -> str:
    return " ".join(re.sub(r"%\(\w+\)s", "%s", sql).split())


def check_same_statements(url: str, token: str, customer_ids: list[int], dialect: Any) -> int:
    """Stop unless the floor sends exactly what the app sends for these customers; the statement count."""
    import warnings

    from sqlalchemy import event

    from kizuna.app import create_app
    from kizuna.db import make_engine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    engine = make_engine(url)
    app_log: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        app_log.append((statement, parameters))

    floor_log: list[tuple[str, Any]] = []
    floor = Floor(url, Plan(dialect), record=floor_log)
    try:
        with TestClient(create_app(engine)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            client.get("/api/v1/customers/1", headers=headers)  # the token is looked up once, then cached
            app_log.clear()
            for cid in customer_ids:
                for suffix, run in (("", floor.customer), ("/timeline", floor.timeline)):
                    path = f"/api/v1/customers/{cid}{suffix}"
                    status = client.get(path, headers=headers).status_code
                    if status != 200:
                        raise SystemExit(f"check: {path} answered {status}")
                    run(cid)
    finally:
        floor.close()
        engine.dispose()

    def values(params: Any) -> list[Any]:
        return list(params.values()) if isinstance(params, dict) else list(params)

    app = [(_normalise(s), values(p)) for s, p in app_log]
    ours = [(_normalise(s), values(p)) for s, p in floor_log]
    if app != ours:
        for i, (a, b) in enumerate(zip(app, ours, strict=False)):
            if a != b:
                raise SystemExit(f"the floor's statement {i} differs from the app's:\n app:   {a}\n floor: {b}")
        raise SystemExit(f"the app sent {len(app)} statements, the floor {len(ours)}")
    return len(app)


def _serve(
    url: str,
    plan: Plan,
    customers: int,
    clients: int,
    seed: int,
    start: float,
    measure_from: float,
    end: float,
    out: Any,
) -> None:
    """One floor process: serves its share of the clients first come, first served, as a server worker would;
    a client sends its next request as soon as its previous one is answered (wrk's closed loop)."""
    floor = Floor(url, plan)
    rng = random.Random(seed)
    lat = array("q")
    calls: tuple[Callable[[int], None], Callable[[int], None]] = (floor.customer, floor.timeline)
    clock = time.perf_counter  # the schedule is wall-clock time (shared across processes); latency is not
    while time.time() < start:
        time.sleep(0.001)
    offset = clock() - time.time()
    measure_from, end = measure_from + offset, end + offset
    waiting = deque(clock() for _ in range(clients))  # when each waiting request was sent
    counter = 0
    while True:
        sent = waiting.popleft()
        if clock() >= end:
            break
        counter += 1
        calls[counter % 2](rng.randint(1, customers))
        answered = clock()
        if sent >= measure_from:
            lat.append(int((answered - sent) * 1e6))
        waiting.append(answered)
    floor.close()
    out.send_bytes(lat.tobytes())
    out.close()


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def run_floor(
    url: str, dialect: Any, customers: int, *, clients: int, processes: int, warmup: int, seconds: int, seed: int = 7
) -> dict[str, float]:
    """Latency percentiles (µs) and rate of ``clients`` concurrent clients served by ``processes`` bare-driver
    processes, in the shape ``run_wrk`` reports."""
    plan = Plan(dialect)
    ctx = mp.get_context("fork")
    start = time.time() + 1.0 + processes * 0.1  # every process connected before the clock starts
    measure_from, end = start + warmup, start + warmup + seconds
    pipes, procs = [], []
    for i in range(processes):
        share = clients // processes + (i < clients % processes)
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_serve, args=(url, plan, customers, share, seed * 1000 + i, start, measure_from, end, send)
        )
        proc.start()
        send.close()
        pipes.append(recv)
        procs.append(proc)
    while time.time() < measure_from:
        time.sleep(0.01)
    own, busy = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds()
    lat = array("q")
    for recv in pipes:
        lat.frombytes(recv.recv_bytes())
    for proc in procs:
        proc.join()
    after, busy = resource.getrusage(resource.RUSAGE_CHILDREN), _busy_seconds() - busy
    # Client CPU over the measured window is approximated by their whole run scaled to it (same loop throughout).
    cpu = (after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime) * seconds / (warmup + seconds)
    values = sorted(lat)
    n = len(values)
    if not n:
        raise SystemExit("the floor measured no requests")

    def pct(q: float) -> float:
        return float(values[min(n - 1, max(0, int(q / 100 * n + 0.5) - 1))])

    stats = {f"p{q:g}": pct(q) for q in (50, 90, 95, 99, 99.9)}
    stats.update(
        requests=n, duration_us=seconds * 1e6, rps=n / seconds, errors=0, mean=sum(values) / n, max=values[-1],
        client_cpu_ms=cpu * 1000 / n, other_cores=max(busy * seconds / (warmup + seconds) - cpu, 0) / seconds,
    )  # fmt: skip
    return stats
