"""The analyses through the API and the CLI: same numbers as the service, errors that name the problem."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from decimal import Decimal
from zoneinfo import ZoneInfo

from kizuna.db import transaction
from tests import factories
from tests.cli import kizuna as run_kizuna

JST = ZoneInfo("Asia/Tokyo")


def _shop(db) -> list[int]:  # noqa: ANN001
    with transaction(db) as s:
        ids = [factories.customer(s, family_name=f"客{i}").id for i in range(5)]
        for i, cid in enumerate(ids):
            for k in range(i + 1):
                factories.order(
                    s,
                    customer_id=cid,
                    ordered_at=dt.datetime(2024, 5, 1 + k, 12, tzinfo=JST),
                    total_amount=1000,
                    lines=[],
                )
    return ids


def test_rfm_and_deciles_over_http(client, db):
    _shop(db)
    r = client.get("/api/v1/analytics/deciles", params={"from": "2024-01-01", "to": "2024-12-31"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customers"] == 5 and Decimal(body["revenue"]) == Decimal("15000.00")
    assert [d["customers"] for d in body["deciles"]] == [1, 1, 1, 1, 1]
    r = client.get("/api/v1/analytics/rfm", params={"as_of": "2024-12-31"})
    assert r.status_code == 200 and r.json()["customers"] == 5
    assert sum(map(sum, r.json()["grid"])) == 5
    bad = client.get("/api/v1/analytics/deciles", params={"from": "2024-12-31", "to": "2024-01-01"})
    assert bad.status_code == 422 and "after it ends" in bad.json()["error"]["message"]


def test_every_role_may_read_analyses(client_as, db):
    _shop(db)
    assert client_as("viewer").get("/api/v1/analytics/rfm").status_code == 200


def _kizuna(db, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return run_kizuna(*args, engine=db)


def test_cli_prints_json_and_csv_and_names_bad_options(db):
    ids = _shop(db)
    r = _kizuna(db, "analytics", "deciles", "--from", "2024-01-01", "--to", "2024-12-31", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["customers"] == 5
    r = _kizuna(db, "analytics", "rfm", "--as-of", "2024-12-31", "--customers", "--format", "csv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("customer_id,recency_days,frequency,monetary,r,f,m,segment")
    assert [int(line.split(",")[0]) for line in lines[1:]] == ids
    r = _kizuna(db, "analytics", "rfm", "--format", "xml")
    assert r.returncode == 2 and "unknown format 'xml'" in r.stdout
    r = _kizuna(db, "analytics", "rfm", "--bins", "1")
    assert r.returncode == 2 and "bins" in r.stdout
