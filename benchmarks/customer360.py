"""Customer 360 latency benchmark: ``GET /api/v1/customers/{id}`` and ``.../timeline`` under load, against its floor.

The goal is a ratio, so that it holds on any machine: **the server's p95 within 2x of the floor's p95 at the same
concurrency**. The floor is the same SQL the two endpoints send, through a bare driver with no web layer, run in
the same invocation on the same data (``customer360_floor.py`` says how it is built, checked and run).

One run:

1. builds (or reuses, when built with the same parameters) the data set in SQLite or PostgreSQL with the real
   schema (``customer360_data.py``): customers with identities, tags and companies, skewed events (a few
   customers have tens of thousands), orders with lines, some consents, notes and merges; then an admin user
   and an API token made through ``kizuna.auth.service``; and reads the data into the OS page cache;
2. checks that the floor sends exactly the statements the app sends, for a few customers (one merged);
3. runs the floor: ``--connections`` clients (32) served by ``--workers`` processes, warm-up then measured;
4. starts ``kizuna serve --workers N`` on a free loopback port and drives it with ``wrk`` (32 connections,
   2 threads), random customer ids, alternating the two endpoints: a warm-up, then the measured run;
5. prints p50/p90/p95/p99 and the rate of both, the ratio of the p95s, and PASS or FAIL.

    .venv/bin/python benchmarks/customer360.py                       # SQLite, full size (builds once)
    .venv/bin/python benchmarks/customer360.py --customers 20000 --events 200000 --duration 10   # quick
    .venv/bin/python benchmarks/customer360.py --database postgresql \
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench --customers 100000 --events 1000000

With PostgreSQL the data set lives in its own schema of ``--pg-url``'s database (``--pg-schema``, default
``c360_bench``; the server and the floor reach it through the URL's search path), which is dropped and rebuilt
when the parameters change. A schema holding tables this benchmark did not build is never dropped.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import customer360_data as data
import customer360_floor as floor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
GOAL_RATIO = 2.0  # server p95 / floor p95, at the same concurrency
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-password-not-secret"


def make_token(url: str) -> str:
    """An admin user (once) and a fresh API token, through the real auth service."""
    from kizuna.auth import service as auth
    from kizuna.auth.permissions import Actor
    from kizuna.db import make_engine, transaction

    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            auth.ensure_admin(session, email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
            _, secret = auth.create_token(session, actor=Actor.system("bench"), email=ADMIN_EMAIL, name="c360 bench")
    finally:
        engine.dispose()
    return secret


# ---------------------------------------------------------------------------------------- server + load

WRK_SCRIPT = r"""
local max_id, token, path_mode
local counter = 0
local headers = {}
local threads = {}

function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  max_id = tonumber(args[1])
  token = args[2]
  path_mode = args[3] or "both"
  math.randomseed(os.time() * 1000 + seed * 7919)
  headers["Authorization"] = "Bearer " .. token
  headers["Accept"] = "application/json"
end

function request()
  counter = counter + 1
  local id = math.random(1, max_id)
  local timeline = (path_mode == "timeline") or (path_mode == "both" and counter % 2 == 0)
  local path = "/api/v1/customers/" .. id
  if timeline then path = path .. "/timeline" end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("C360 requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  for _, p in ipairs({50, 90, 95, 99, 99.9}) do
    io.write(string.format("C360 p%s=%d\n", p, latency:percentile(p)))
  end
  io.write(string.format("C360 mean=%.0f max=%.0f\n", latency.mean, latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback http only
        return resp.status, resp.read()


def start_server(url: str, home: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "KIZUNA_HOME": str(home), "KIZUNA_DATABASE_URL": url}
    kizuna = Path(sys.executable).with_name("kizuna")
    cmd = [str(kizuna), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kizuna serve exited with {proc.returncode}")
        try:
            if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("kizuna serve did not answer /healthz within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (start_new_session)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in the server's process group (the master and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used (user, nice, system, irq, softirq, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    wrk: str, script: Path, base: str, token: str, customers: int, *, seconds: int, connections: int, threads: int,
    mode: str = "both", pgid: int = 0,
) -> dict[str, float]:  # fmt: skip
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base]
    cmd += ["--", str(customers), token, mode]
    cpu = group_cpu_seconds(pgid) if pgid else 0.0
    busy, own = machine_busy_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    cpu = group_cpu_seconds(pgid) - cpu if pgid else 0.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
    other = machine_busy_seconds() - busy - cpu - wrk_cpu
    stats: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("C360 "):
            for pair in line[5:].split():
                key, value = pair.split("=")
                stats[key] = float(value)
    if "requests" not in stats:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["errors"] = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    stats["server_cpu_ms"] = cpu * 1000 / max(stats["requests"], 1)
    stats["wrk_cores"] = wrk_cpu / seconds
    stats["other_cores"] = max(other, 0.0) / seconds
    return stats


def report(title: str, s: dict[str, float], *, cpu: str) -> None:
    ms = {k: s[k] / 1000 for k in ("p50", "p90", "p95", "p99", "p99.9", "mean", "max")}
    print(f"\n{title}")
    took = s["duration_us"] / 1e6
    print(f"  requests {s['requests']:,.0f} in {took:.1f} s = {s['rps']:,.0f} req/s; errors {s['errors']:.0f}")
    print(
        f"  p50 {ms['p50']:.1f} ms   p90 {ms['p90']:.1f} ms   p95 {ms['p95']:.1f} ms   p99 {ms['p99']:.1f} ms", end=""
    )
    print(f"   p99.9 {ms['p99.9']:.1f} ms   mean {ms['mean']:.1f} ms   max {ms['max']:.1f} ms")
    print(f"  {cpu}; other processes on the machine {s['other_cores']:.2f} cores (of {os.cpu_count()})")


def verdict(server: dict[str, float], base: dict[str, float]) -> bool:
    ratio = server["p95"] / base["p95"]
    passed = ratio <= GOAL_RATIO and server["errors"] == 0
    print(f"\n  p95 server {server['p95'] / 1000:.1f} ms / floor {base['p95'] / 1000:.1f} ms = {ratio:.2f}x"
          f"   goal <= {GOAL_RATIO:.1f}x   {'PASS' if passed else 'FAIL'}")  # fmt: skip
    print(f"  (p50 {server['p50'] / base['p50']:.2f}x, p99 {server['p99'] / base['p99']:.2f}x,"
          f" rate {server['rps'] / base['rps']:.2f}x of the floor's)")  # fmt: skip
    if server["errors"]:
        print(f"  FAIL: {server['errors']:.0f} errors (non-2xx/3xx, timeouts or socket errors)")
    return passed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", help="with --database postgresql: a database this benchmark may own, e.g.\n"
                   "postgresql+psycopg://postgres@127.0.0.1:5432/kz_bench")  # fmt: skip
    p.add_argument("--pg-schema", default="c360_bench", help="the schema this benchmark owns in that database")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--orders", type=int, default=None, help="default: customers / 2")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rebuild", action="store_true", help="rebuild even if a database with these parameters exists")
    p.add_argument("--workers", type=int, default=2, help="kizuna serve --workers (the machine here has 2 cores)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections, and floor client processes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10, help="seconds of warm-up load, not measured")
    p.add_argument("--duration", type=int, default=30, help="seconds of measured load")
    p.add_argument("--rounds", type=int, default=1, help="floor + server pairs; the verdict uses the median ratio")
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    args = p.parse_args(argv)
    orders = args.orders if args.orders is not None else args.customers // 2
    if not Path(args.wrk).exists():
        raise SystemExit(f"wrk not found at {args.wrk} (apt-get install wrk)")
    params = data.Params(customers=args.customers, events=args.events, orders=orders, seed=args.seed)
    DATA.mkdir(parents=True, exist_ok=True)
    if args.database == "sqlite":
        url = data.sqlite_database(DATA, params, rebuild=args.rebuild)
    else:
        if not args.pg_url:
            raise SystemExit("--database postgresql needs --pg-url")
        url = data.postgresql_database(args.pg_url, params, schema=args.pg_schema, rebuild=args.rebuild)
    token = make_token(url)
    (data.prewarm_sqlite if args.database == "sqlite" else data.prewarm_postgresql)(url)

    from kizuna.db import make_engine

    engine = make_engine(url)
    dialect = engine.dialect
    engine.dispose()
    # Customer 1 has the most of everything; 1000 is merged into 999; the others are ordinary.
    sample = [i for i in (1, 1000, 2, 3, 40, 777, args.customers // 2, args.customers) if i <= args.customers]
    n = floor.check_same_statements(url, token, sample, dialect)
    print(f"the floor sends the app's own statements: {n} statements for customers {sample} match")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = DATA / "home"
    home.mkdir(exist_ok=True)
    common = {"connections": args.connections, "threads": args.threads}
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "c360.lua"
        script.write_text(WRK_SCRIPT)
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}: floor, {args.connections} clients served by {args.workers} processes,"
                  f" {args.warmup} s warm-up + {args.duration} s; load average before: {os.getloadavg()[0]:.2f}",
                  flush=True)  # fmt: skip
            bare = floor.run_floor(
                url, dialect, args.customers, clients=args.connections, processes=args.workers, warmup=args.warmup,
                seconds=args.duration,
            )  # fmt: skip
            proc = start_server(url, home, port, args.workers)
            try:
                for path in ("/api/v1/customers/1", "/api/v1/customers/1/timeline", "/api/v1/customers/1000"):
                    status, _ = get(base + path, token)
                    if status != 200:
                        raise SystemExit(f"{path} answered {status}")
                if args.warmup:
                    run_wrk(args.wrk, script, base, token, args.customers, seconds=args.warmup, **common)
                print(f"round {round_no}: server, wrk -t{args.threads} -c{args.connections}, {args.duration} s;"
                      f" load average before: {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
                served = run_wrk(
                    args.wrk, script, base, token, args.customers, seconds=args.duration, pgid=proc.pid, **common
                )
            finally:
                stop_server(proc)
            pairs.append((bare, served))

    size = f"{args.customers:,} customers / {args.events:,} events / {orders:,} orders"
    print(f"\nCustomer 360 on {args.database}, {size}, {args.connections} concurrent clients,"
          f" kizuna serve --workers {args.workers}, {os.cpu_count()} CPUs")  # fmt: skip
    for round_no, (bare, served) in enumerate(pairs, start=1):
        label = f" (round {round_no})" if args.rounds > 1 else ""
        report(f"floor{label}: the same SQL through {'sqlite3' if args.database == 'sqlite' else 'psycopg'}, "
               f"{args.connections} clients served by {args.workers} processes, endpoints alternate", bare,
               cpu=f"client CPU {bare['client_cpu_ms']:.2f} ms per request")  # fmt: skip
        cpu = f"server CPU {served['server_cpu_ms']:.2f} ms per request; wrk used {served['wrk_cores']:.2f} cores"
        report(f"server{label}: GET /customers/{{id}} + /customers/{{id}}/timeline (alternating), wrk", served, cpu=cpu)
    # With several rounds the verdict takes the round with the median ratio (noise from a shared machine).
    pairs.sort(key=lambda pair: pair[1]["p95"] / pair[0]["p95"])
    bare, served = pairs[len(pairs) // 2]
    passed = verdict(served, bare)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
