"""The CDNOW sample (Fader, Hardie & Lee 2005) from the ``lifetimes`` wheel, and a way to import it into a store
through Kizuna's own importers (customers, then order-level rows), so that the analyses read it as users' data.

Only the data files are read: the package itself is not imported (its fitting is not what we test against)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from kizuna.auth.permissions import Actor
from kizuna.imports.runner import run_import


def datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    assert spec and spec.submodule_search_locations, "the lifetimes wheel (test extra) is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def transactions(customers: int | None = None) -> list[tuple[int, str, str]]:
    """``(customer, YYYY-MM-DD, dollars)`` rows of CDNOW_sample.txt (2,357 customers, 6,919 rows), optionally only
    the first ``customers`` customers."""
    rows = []
    for line in (datasets() / "CDNOW_sample.txt").read_text().splitlines():
        _, cid, day, _, dollars = line.split()
        if customers is None or int(cid) <= customers:
            rows.append((int(cid), f"{day[:4]}-{day[4:6]}-{day[6:]}", dollars))
    return rows


def published_summary() -> dict[int, dict[str, float]]:
    """Fader and Hardie's calibration summary of the same customers (39 weeks to 1997-09-30): x, t_x, T, zbar."""
    with open(datasets() / "cdnow_customers_summary_with_transactions.csv", newline="") as f:
        return {int(r["ID"]): {k: float(r[k]) for k in ("x", "t_x", "T", "zbar")} for r in csv.DictReader(f)}


def import_into(engine: Engine, folder: Path, customers: int | None = None, currency: str = "USD") -> dict[int, int]:
    """Import the customers and their orders (completed, in dollars unless told) with the CSV importers; returns
    store id → CDNOW id."""
    rows = transactions(customers)
    ids = sorted({cid for cid, _, _ in rows})
    people = folder / "cdnow-customers.csv"
    people.write_text("external_id,family_name\n" + "".join(f"CD{i},顧客{i}\n" for i in ids), encoding="utf-8")
    orders = folder / "cdnow-orders.csv"
    orders.write_text(
        "order_id,customer_id,ordered_at,total,currency\n"
        + "".join(f"CD-{n},CD{cid},{day},{dollars},{currency}\n" for n, (cid, day, dollars) in enumerate(rows)),
        encoding="utf-8",
    )
    actor = Actor.system("test")
    assert run_import(engine, "customers", people, actor=actor).inserted == len(ids)
    report = run_import(engine, "orders", orders, actor=actor, mapping={"customer_id": "customer_external_id"})
    assert (report.inserted, report.rejected) == (len(rows), 0)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id, external_id FROM customers WHERE external_id LIKE 'CD%'")).all()
    return {int(store_id): int(external[2:]) for store_id, external in found}
