"""CTB through the API and the CLI: the same numbers as the analysis, errors that name the problem."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
from decimal import Decimal
from zoneinfo import ZoneInfo

from kizuna.db import transaction
from tests import factories
from tests.cli import kizuna

JST = ZoneInfo("Asia/Tokyo")


def _shop(db) -> list[int]:  # noqa: ANN001
    """Three tea buyers of brand A (two also bought brand B coffee) and one coffee-only customer."""
    with transaction(db) as s:
        factories.product(s, sku="T1", name="煎茶", category="tea", taste="green", brand="A")
        factories.product(s, sku="C1", name="深煎り", category="coffee", taste="bitter", brand="B")
        ids = [factories.customer(s, family_name=f"客{i}").id for i in range(4)]
        baskets = [["T1", "C1"], ["T1", "C1"], ["T1"], ["C1"]]
        for cid, basket in zip(ids, baskets, strict=True):
            lines = [{"sku": sku, "quantity": 2, "unit_price": 500} for sku in basket]
            factories.order(s, customer_id=cid, ordered_at=dt.datetime(2024, 5, 1, 12, tzinfo=JST), lines=lines)
    return ids


def test_ctb_likely_and_recommendations_over_http(client, db):
    ids = _shop(db)
    r = client.get("/api/v1/analytics/ctb", params={"dimension": "category", "to": "2024-12-31"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customers"] == 4 and Decimal(body["revenue"]) == Decimal("6000.00")
    assert [(v["value"], v["customers"], v["revenue"]) for v in body["values"]] == [
        ("coffee", 3, "3000.00"),
        ("tea", 3, "3000.00"),
    ]
    assert sum(g["customers"] for g in body["groups"]) == 4
    r = client.get("/api/v1/analytics/ctb/customers", params={"to": "2024-12-31", "customer_id": [ids[2], ids[3]]})
    assert [(c["customer_id"], c["top_brand"]) for c in r.json()] == [(ids[2], "A"), (ids[3], "B")]
    r = client.get("/api/v1/analytics/ctb/likely", params={"dimension": "brand", "value": "B", "to": "2024-05-31"})
    assert r.status_code == 200, r.text
    # A's buyers: 2 of 3 bought B; the buyers of B are left out (they bought it within 90 days).
    assert [(c["customer_id"], round(c["score"], 9)) for c in r.json()["customers"]] == [(ids[2], 0.666666667)]
    bad = client.get("/api/v1/analytics/ctb/likely", params={"dimension": "brand", "value": "Z", "to": "2024-12-31"})
    assert bad.status_code == 422 and "brand 'Z'" in bad.json()["error"]["message"]
    bad = client.get("/api/v1/analytics/ctb", params={"dimension": "colour"})
    assert bad.status_code == 422
    r = client.get("/api/v1/analytics/recommendations", params={"customer_id": [ids[3], ids[2]], "k": 3})
    assert r.status_code == 200, r.text
    assert [(c["customer_id"], [p["sku"] for p in c["products"]]) for c in r.json()] == [
        (ids[3], ["T1"]),
        (ids[2], ["C1"]),
    ]


def _kizuna(db, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return kizuna(*args, engine=db)


def test_cli_ctb_tables_json_csv_and_bad_options(db):
    ids = _shop(db)
    r = _kizuna(db, "analytics", "ctb", "--dimension", "brand", "--to", "2024-12-31", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [v["value"] for v in json.loads(r.stdout)["values"]] == ["A", "B"]
    r = _kizuna(db, "analytics", "ctb", "--to", "2024-12-31", "--customers", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(int(row["customer_id"]), row["top_category"]) for row in rows][3] == (ids[3], "coffee")
    r = _kizuna(db, "analytics", "ctb", "--dimension", "brand", "--to", "2024-12-31", "--likely", "B")
    assert r.returncode == 0 and "Likely to buy brand B" in r.stdout, r.stdout + r.stderr
    r = _kizuna(db, "analytics", "ctb", "--to", "2024-12-31")
    assert r.returncode == 0 and "coffee" in r.stdout and "group" in r.stdout
    r = _kizuna(db, "analytics", "recommend", "--customer", str(ids[3]), "--format", "json")
    assert [p["sku"] for p in json.loads(r.stdout)[0]["products"]] == ["T1"]
    # The similarities the worker keeps daily, made now: the same list, read from them.
    r = _kizuna(db, "analytics", "neighbors", "--format", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["customers"], summary["products"], summary["pairs"]) == (4, 2, 2)  # T1-C1 both ways
    r = _kizuna(db, "analytics", "recommend", "--customer", str(ids[3]), "--format", "json")
    assert [p["sku"] for p in json.loads(r.stdout)[0]["products"]] == ["T1"]
    r = _kizuna(db, "analytics", "neighbors")
    assert r.returncode == 0 and "pairs kept" in r.stdout, r.stdout + r.stderr
    r = _kizuna(db, "analytics", "ctb", "--dimension", "colour")
    assert r.returncode == 2 and "dimension" in r.stdout
    r = _kizuna(db, "analytics", "ctb", "--half-life-days", "0")
    assert r.returncode == 2 and "half_life_days" in r.stdout
