"""Audience export speed: a segment of N customers (half with advertising consent) written as a Google and a Meta
file, beside its floor measured in the same run: the same rows read with a bare SELECT through the driver and
hashed with hashlib, no normalisation, no CSV, no provision records.

    .venv/bin/python benchmarks/audience_export.py [--customers 100000]

The data are written straight into a scratch SQLite file (benchmarks/data/), not through the services: this
measures the export, not the load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import sqlite3
import time
from pathlib import Path

from sqlalchemy import insert, text

from kizuna.audiences.service import write_audience
from kizuna.auth.permissions import Actor
from kizuna.customers.models import Consent, Customer
from kizuna.db import make_engine, migrate, new_session
from kizuna.segments.models import Segment, SegmentMembership

DATA = Path(__file__).parent / "data"


def build(path: Path, n: int) -> None:
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "id": i,
                    "email": f"user.{i}@gmail.com" if i % 3 else f"user{i}@example.co.jp",
                    "phone": f"+8190{i:08d}",
                    "family_name": "山田",
                    "given_name": f"太郎{i % 100}",
                    "full_name": "山田 太郎",
                    "postal_code": "150-0002",
                    "prefecture": "東京都",
                    "city": "渋谷区",
                    "country": "JP",
                    "status": "active",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, n + 1)
            ],
        )
        conn.execute(
            insert(Consent),
            [
                {
                    "customer_id": i,
                    "channel": "email",
                    "purpose": "advertising",
                    "status": "granted",
                    "method": "web_form",
                    "recorded_at": now,
                    "recorded_by": "bench",
                }
                for i in range(1, n + 1, 2)
            ],
        )
        conn.execute(insert(Segment), [{"id": 1, "name": "bench", "kind": "static", "source": {}, "member_count": n}])
        conn.execute(
            insert(SegmentMembership),
            [{"segment_id": 1, "customer_id": i, "entered_at": now} for i in range(1, n + 1)],
        )
    engine.dispose()


def floor(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT c.email, c.phone, c.given_name, c.family_name FROM customers c "
        "JOIN segment_memberships m ON m.customer_id = c.id AND m.segment_id = 1 AND m.exited_at IS NULL "
        "JOIN consents k ON k.customer_id = c.id AND k.purpose = 'advertising' AND k.status = 'granted'"
    )
    count = 0
    for row in rows:
        for value in row:
            hashlib.sha256(value.encode()).hexdigest()
        count += 1
    conn.close()
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / "audience.db"
    build(path, args.customers)
    engine = make_engine(f"sqlite:///{path}")
    actor = Actor.system("bench")
    # Every kizuna process loads its outbox subscribers at start; loaded here so the first run does not time it.
    from kizuna.outbox import registry

    registry.load()
    for platform in ("google", "meta"):
        with new_session(engine) as session:
            started = time.perf_counter()
            result = write_audience(session, actor=actor, segment_id=1, platform=platform, out=io.BytesIO())
            session.commit()
            seconds = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM third_party_provisions"))
        floor_seconds, floor_rows = floor(path)
        assert floor_rows == result.rows, (floor_rows, result.rows)
        print(
            f"{platform}: {result.rows:,} of {result.members:,} members in {seconds:.2f} s "
            f"({result.rows / seconds:,.0f} rows/s, provision records included); "
            f"floor (bare SELECT + sha256 of 4 fields) {floor_seconds:.2f} s "
            f"-> {seconds / floor_seconds:.1f}x the floor"
        )


if __name__ == "__main__":
    main()
