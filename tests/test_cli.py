"""The `kizuna` command against a real database in a scratch KIZUNA_HOME."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.cli import kizuna
from tests.conftest import BACKENDS, PG_URL


def _process(home, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m kizuna`` as a user runs it: the entry point itself, in a process of its own."""
    env = {"KIZUNA_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "kizuna", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _kizuna(home, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"KIZUNA_HOME": str(home)}
    # The database is the one in KIZUNA_HOME unless a URL is given, as for a user with no KIZUNA_DATABASE_URL.
    env["KIZUNA_DATABASE_URL"] = db_url or ""
    return kizuna(*args, **env)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_demo_loads_reproducible_data_and_prints_admin_login(home, tmp_path):
    first = _process(home, "demo", "--customers", "120", "--seed", "7", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert "admin@kizuna.example" in first.stdout
    assert "120 customers" in first.stdout

    again = _kizuna(tmp_path / "other", "demo", "--customers", "120", "--seed", "7", "--no-serve")
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert _kizuna(home, "export", "customers", "-o", str(out_a)).returncode == 0
    assert _kizuna(tmp_path / "other", "export", "customers", "-o", str(out_b)).returncode == 0
    assert again.returncode == 0

    def people(path):
        return [(r["email"], r["phone"], r["full_name"]) for r in csv.DictReader(path.open(encoding="utf-8-sig"))]

    assert people(out_a) == people(out_b)
    assert len(people(out_a)) == 120

    from kizuna.db import make_engine
    from kizuna.events.models import Event
    from kizuna.orders.models import OrderLine

    engine = make_engine(f"sqlite:///{home / 'kizuna.db'}")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(OrderLine)) > 100
        channels = set(conn.scalars(select(Event.channel).distinct()))
        # The per-customer metrics are computed before the demo serves: RFM for every buyer, top categories.
        from kizuna.analytics.models import CustomerMetrics

        metrics = conn.execute(
            select(func.count(), func.count(CustomerMetrics.top_category)).select_from(CustomerMetrics)
        ).one()
    assert {"web", "email", "store", "call"} <= channels
    assert metrics[0] > 60 and metrics[1] == metrics[0]
    engine.dispose()


def test_users_and_tokens_from_the_cli(home):
    made = _kizuna(
        home, "users", "create", "--email", "Mika@Example.jp", "--password", "long-password-1", "--role", "marketer"
    )
    assert made.returncode == 0, made.stderr
    assert "mika@example.jp" in made.stdout
    bad_role = _kizuna(home, "users", "create", "--email", "x@example.jp", "--role", "pope")
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stdout
    token = _kizuna(home, "tokens", "create", "--email", "mika@example.jp", "--name", "crm-sync")
    assert token.returncode == 0
    assert token.stdout.strip().startswith("kz_")
    missing = _kizuna(home, "tokens", "create", "--email", "nobody@example.jp", "--name", "x")
    assert missing.returncode == 2


def test_export_with_a_bad_filter_names_it(home, tmp_path):
    out = tmp_path / "x.csv"
    r = _kizuna(home, "export", "customers", "-o", str(out), "-f", "shoe_size=9")
    assert r.returncode == 2
    assert "shoe_size" in r.stdout
    assert not out.exists()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b == "postgresql"])
def test_init_creates_the_schema_on_a_fresh_postgresql_database(backend, tmp_path):
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(PG_URL)
    fresh = admin_url.set(database=f"{admin_url.database}_cli")
    server = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh.database}"'))
        conn.execute(text(f'CREATE DATABASE "{fresh.database}"'))
    server.dispose()
    r = _kizuna(tmp_path, "init", db_url=fresh.render_as_string(hide_password=False))
    assert r.returncode == 0, r.stderr
    assert "database ready" in r.stdout
    check = create_engine(fresh)
    assert {"customers", "events", "orders", "audit_log", "outbox"} <= set(inspect(check).get_table_names())
    check.dispose()


def test_serve_runs_a_worker_beside_it_so_background_work_gets_done(home):
    """One command is enough: a duplicate scan queued through the API is done by the worker `serve` starts."""
    import signal
    import socket
    import time

    import httpx

    assert _kizuna(home, "users", "create", "--email", "ops@example.com", "--role", "admin").returncode == 0
    token = _kizuna(home, "tokens", "create", "--email", "ops@example.com", "--name", "t").stdout.strip().split()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"KIZUNA_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "kizuna", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1/customers/duplicates/scan"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.post(base, headers=headers, timeout=5).status_code == 202
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        while (scan := httpx.get(base, headers=headers, timeout=5).json())["status"] != "done":
            assert time.monotonic() < deadline, f"no worker did the queued scan: {scan}"
            time.sleep(0.3)
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert children, "serve started no worker process"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    # The worker ends with the server (uvicorn may end its process by re-raising the signal, skipping cleanup).
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, f"the worker outlived the server: {children}"
        time.sleep(0.2)
