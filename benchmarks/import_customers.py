"""Customer import throughput: a generated Japanese customer CSV into a fresh SQLite database.

    .venv/bin/python benchmarks/import_customers.py            # 1,000,000 rows (target: 25,000 rows/s)
    .venv/bin/python benchmarks/import_customers.py --rows 100000

The file is generated once per (rows, seed) under benchmarks/data/ (gitignored): Japanese names with kana
readings, e-mails, JP phones in mixed formats (hyphenated, bare, full-width, +81), and about 5% rows that
repeat an earlier person's e-mail (in other letter case) or phone. The pandas read_csv + drop_duplicates
time on the same file is printed beside the import's as a reference point for "just reading the file".
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import time
from pathlib import Path

from faker import Faker

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TARGET_ROWS_PER_SECOND = 25_000
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


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the parser pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=None, help="parser processes (default: one per core)")
    args = parser.parse_args()

    from kizuna.auth.permissions import Actor
    from kizuna.config import get_settings
    from kizuna.db import make_engine, migrate
    from kizuna.imports.runner import run_import

    data = HERE / "data"
    path = data / f"customers-{args.rows}-{args.seed}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate(path, args.rows, args.seed)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    database = data / "import-bench.db"
    for leftover in data.glob("import-bench.db*"):
        leftover.unlink()
    engine = make_engine(f"sqlite:///{database}")
    migrate(engine)

    baseline = pandas_baseline(path)
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    report = run_import(
        engine,
        "customers",
        path,
        actor=Actor.system("benchmark"),
        report_path=data / "import-bench-report.csv",
        workers=args.workers,
        batch_size=get_settings().import_batch_size,
    )
    rate = report.read / report.seconds
    cpu = _cpu_seconds() - cpu_before
    print(f"file:        {path.name} ({path.stat().st_size / 1e6:.0f} MB, {report.encoding})")
    print(f"import:      {report.read:,} rows in {report.seconds:.1f} s = {rate:,.0f} rows/s")
    print(f"             inserted {report.inserted:,}, updated {report.updated:,}, duplicates {report.duplicates:,}, "
          f"rejected {report.rejected:,}")  # fmt: skip
    print(f"cpu:         {cpu:.1f} s over all processes = {cpu / report.read * 1e6:.0f} us per row "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")  # fmt: skip
    print(f"pandas:      read_csv + drop_duplicates {baseline:.1f} s = {report.read / baseline:,.0f} rows/s")
    print(f"target:      {TARGET_ROWS_PER_SECOND:,} rows/s -> {'met' if rate >= TARGET_ROWS_PER_SECOND else 'NOT met'}")


if __name__ == "__main__":
    main()
