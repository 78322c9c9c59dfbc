"""Customer import throughput against the floor of its design, measured in the same run, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/import_customers.py                  # 1,000,000 rows into SQLite
    .venv/bin/python benchmarks/import_customers.py --rows 100000
    .venv/bin/python benchmarks/import_customers.py --database both --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/kizuna_bench

The file is generated once per (rows, seed) under benchmarks/data/ (gitignored): Japanese names with kana
readings, e-mails, JP phones in mixed formats (hyphenated, bare, full-width, +81), and about 5% rows that
repeat an earlier person's e-mail (in other letter case) or phone.

Absolute rates do not travel between machines, so every goal is a ratio to something measured in this run:

- the floor: every statement the import executed (recorded while it ran) replayed through bare sqlite3 or
  psycopg on a freshly migrated database: same tables and indexes, same INSERT ... SELECT shapes, same batches
  and commits, on rows parsed beforehand (``import_floor.py``). Goal: import time within 1.5x of the floor's.
- with ``--database both``: PostgreSQL's import against SQLite's import of the same file. Goal: at least as
  fast.

``--pg-url`` names a database that the benchmark EMPTIES (drops and re-creates its public schema); its name
must contain "bench". CPU per row counts every process of the run on this machine: the import's parsers and,
on PostgreSQL, the server processes serving the import's connections (the floor's: its one connection).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from faker import Faker
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from import_floor import Recorder, backend_cpu, replay_postgresql, replay_sqlite, sqlite_pragmas  # noqa: E402

from kizuna.auth.permissions import Actor  # noqa: E402
from kizuna.config import get_settings  # noqa: E402
from kizuna.db import make_engine, migrate  # noqa: E402
from kizuna.imports.runner import run_import  # noqa: E402

# The import's goal: its time within this factor of its floor's (the same statements through the bare driver).
FLOOR_GOAL = 1.5
HEADER = [
    "会員ID",
    "姓",
    "名",
    "セイ",
    "メイ",
    "メールアドレス",
    "電話番号",
    "郵便番号",
    "都道府県",
    "市区町村",
    "住所",
]
DOMAINS = ["example.jp", "example.co.jp", "example.ne.jp", "example.com", "mail.example.jp"]
FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def _phone(rng: random.Random) -> str:
    prefix = rng.choice(["090", "080", "070", "03", "06", "050"])
    body = (
        f"{rng.randint(1000, 9999)}{rng.randint(0, 9999):04d}"
        if len(prefix) == 3
        else f"{rng.randint(1000, 9999)}{rng.randint(0, 9999):04d}"
    )
    national = f"{prefix}-{body[:4]}-{body[4:]}"
    style = rng.random()
    if style < 0.5:
        return national
    if style < 0.7:
        return national.replace("-", "")
    if style < 0.85:
        return national.translate(FULL_WIDTH)
    return f"+81 {prefix[1:]} {body[:4]} {body[4:]}"


def generate(path: Path, rows: int, seed: int) -> None:
    """A deterministic customer file; about 5% of rows repeat an earlier person by e-mail or phone."""
    rng = random.Random(seed)
    fake = Faker("ja_JP")
    fake.seed_instance(seed)
    families = list({fake.last_name_pair() for _ in range(2000)})
    givens = list({fake.first_name_pair() for _ in range(2000)})
    places = [
        (fake.postcode(), fake.prefecture(), fake.city(), fake.town() + fake.chome() + fake.ban()) for _ in range(5000)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, str]] = []
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(rows):
            family, family_kana, family_romaji = rng.choice(families)
            given, given_kana, given_romaji = rng.choice(givens)
            email = f"{given_romaji.lower()}.{family_romaji.lower()}.{i}@{rng.choice(DOMAINS)}"
            phone = _phone(rng) if rng.random() < 0.9 else ""
            external_id = f"M{i:08d}"
            if written and rng.random() < 0.05:
                old_email, old_phone = rng.choice(written[-50_000:])
                if rng.random() < 0.5 or not old_phone:
                    email = old_email.upper() if rng.random() < 0.5 else old_email
                else:
                    phone = old_phone
                external_id = ""
            else:
                written.append((email, phone))
            out.writerow([external_id, family, given, family_kana, given_kana, email, phone, *rng.choice(places)])


def pandas_baseline(path: Path) -> float:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(path, dtype=str)
    frame = frame.drop_duplicates(subset=["メールアドレス"]).drop_duplicates(subset=["電話番号"])
    return time.perf_counter() - started


def _own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the parser pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Measured:
    backend: str
    rows: int
    seconds: float
    cpu_seconds: float
    floor_seconds: float
    floor_cpu_seconds: float
    statements: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds


def _fresh(url: str) -> Engine:
    """A freshly migrated database at ``url`` (a new file, or an emptied PostgreSQL schema)."""
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
    else:
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    engine = make_engine(url)
    migrate(engine)
    return engine


def _server_pids(engine: Engine) -> list[int]:
    """PostgreSQL server processes of this database's connections (the import's pool keeps them open)."""
    with engine.connect() as connection:
        return list(
            connection.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalars()
        ) + [connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()]


def measure(backend: str, url: str, path: Path, workers: int | None, top: int = 0) -> Measured:
    """Import ``path`` into a fresh database at ``url``, then replay its statements there as the floor."""
    engine = _fresh(url)
    pragmas = sqlite_pragmas(engine) if backend == "sqlite" else {}
    recorder = Recorder()
    recorder.attach(engine)
    try:
        pids = _server_pids(engine) if backend == "postgresql" else []
        cpu_before, server_before, writer_before = _cpu_seconds(), backend_cpu(pids), _own_cpu()
        report = run_import(
            engine,
            "customers",
            path,
            actor=Actor.system("benchmark"),
            report_path=HERE / "data" / f"import-bench-{backend}-report.csv",
            workers=workers,
            batch_size=get_settings().import_batch_size,
        )
        cpu, writer = _cpu_seconds() - cpu_before, _own_cpu() - writer_before
        if backend == "postgresql":
            # Connections the pool opened during the import, too.
            pids = sorted(set(pids) | set(_server_pids(engine)))
            cpu += backend_cpu(pids) - server_before
        engine.dispose()
        rate, per_row = report.read / report.seconds, cpu / report.read * 1e6
        print(f"{backend + ':':<12}{report.read:,} rows in {report.seconds:.1f} s = {rate:,.0f} rows/s, "
              f"{per_row:.0f} us CPU per row (load average {os.getloadavg()[0]:.1f})")  # fmt: skip
        print(f"{'':<12}CPU per row: {writer / report.read * 1e6:.0f} us in the writer (this process), "
              f"{(cpu - writer) / report.read * 1e6:.0f} us in parsers and server processes")  # fmt: skip
        print(f"{'':<12}inserted {report.inserted:,}, updated {report.updated:,}, duplicates {report.duplicates:,}, "
              f"rejected {report.rejected:,}")  # fmt: skip
        engine = _fresh(url)
        engine.dispose()
        if backend == "sqlite":
            floor = replay_sqlite(Path(url.split("///", 1)[1]), recorder, pragmas)
        else:
            floor = replay_postgresql(url.replace("+psycopg", ""), recorder)
    finally:
        recorder.close()
    rate, per_row = report.read / floor.seconds, floor.cpu_seconds / report.read * 1e6
    print(f"{'  floor:':<12}{floor.statements:,} recorded steps in {floor.seconds:.1f} s = {rate:,.0f} rows/s, "
          f"{per_row:.0f} us CPU per row")  # fmt: skip
    for seconds, times, name in floor.costliest[:top]:
        print(f"{'':<12}{seconds:6.2f} s  {times:4}x  {name}")
    return Measured(backend, report.read, report.seconds, cpu, floor.seconds, floor.cpu_seconds, floor.statements)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=None, help="parser processes (default: one per core)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--pg-url", help="PostgreSQL database to EMPTY and import into (its name contains 'bench')")
    parser.add_argument("--floor-top", type=int, default=0, help="list the floor's N costliest statements")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas read_csv reference")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in backends and (not args.pg_url or "bench" not in args.pg_url.rsplit("/", 1)[-1]):
        parser.error("--database postgresql needs --pg-url of a database whose name contains 'bench' (it is emptied)")

    data = HERE / "data"
    path = data / f"customers-{args.rows}-{args.seed}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.rows, args.seed)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    print(f"file:       {path.name} ({path.stat().st_size / 1e6:.0f} MB), {time.strftime('%Y-%m-%d %H:%M %Z')}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if not args.no_pandas:
        baseline = pandas_baseline(path)
        rate = args.rows / baseline
        print(f"pandas:     read_csv + drop_duplicates {baseline:.1f} s = {rate:,.0f} rows/s (reference)")

    urls = {"sqlite": f"sqlite:///{data / 'import-bench.db'}", "postgresql": args.pg_url}
    results = {backend: measure(backend, urls[backend], path, args.workers, args.floor_top) for backend in backends}
    print()
    for m in results.values():
        ok = verdict(m.ratio <= FLOOR_GOAL)
        print(f"{m.backend}: import {m.ratio:.2f}x its floor's time ({m.rows / m.seconds:,.0f} vs "
              f"{m.rows / m.floor_seconds:,.0f} rows/s; CPU {m.cpu_seconds / m.rows * 1e6:.0f} vs "
              f"{m.floor_cpu_seconds / m.rows * 1e6:.0f} us/row) -> goal within {FLOOR_GOAL}x: {ok}")  # fmt: skip
    if len(results) == 2:
        lite, pg = results["sqlite"], results["postgresql"]
        print(f"postgresql vs sqlite: {pg.rows / pg.seconds:,.0f} vs {lite.rows / lite.seconds:,.0f} rows/s = "
              f"{lite.seconds / pg.seconds:.2f}x SQLite's speed (CPU {pg.cpu_seconds / pg.rows * 1e6:.0f} vs "
              f"{lite.cpu_seconds / lite.rows * 1e6:.0f} us/row) -> goal at least as fast: "
              f"{verdict(pg.seconds <= lite.seconds)}")  # fmt: skip


if __name__ == "__main__":
    main()
