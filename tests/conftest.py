"""Real databases for every test: SQLite always, PostgreSQL too (both by default; CI runs both).

``KIZUNA_TEST_BACKENDS=sqlite`` narrows a local run; a listed backend that is unreachable fails the run
instead of being skipped, so CI never passes on half the matrix by accident.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

BACKENDS = [b.strip() for b in os.environ.get("KIZUNA_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
BASE_PG_URL = os.environ.get("KIZUNA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Under pytest-xdist each worker process gets a database of its own (``test_gw0``, ``test_gw1``...), created
# beside the configured one on first use: the suite drops and recreates ``public``, so workers cannot share.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _worker_url(url: str) -> str:
    if not WORKER:
        return url
    from sqlalchemy.engine import make_url

    base = make_url(url)
    return base.set(database=f"{base.database}_{WORKER}").render_as_string(hide_password=False)


PG_URL = _worker_url(BASE_PG_URL)


def _ensure_database(url: str) -> None:
    """Create the worker's database when it does not exist yet (connecting through the configured one)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    wanted = make_url(url).database
    server = create_engine(BASE_PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": wanted}).first():
                conn.execute(text(f'CREATE DATABASE "{wanted}"'))
    finally:
        server.dispose()


def pytest_configure(config: pytest.Config) -> None:
    # Settings are read once per process; point them at a scratch home before anything imports them.
    # One home per process: the controller sets KIZUNA_HOME before it starts the xdist workers, and a worker that
    # inherited it would share the controller's import folder and secret with every other worker.
    home = Path(config.rootpath) / ".pytest-home" / (WORKER or "main")
    os.environ["KIZUNA_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    # Rich sizes its console when kizuna's CLI is first imported; the CLI tests run it in this process and read
    # its tables, which 80 columns would wrap.
    os.environ.setdefault("COLUMNS", "200")
    _cheap_password_hashing()


SLOW_FIRST = (
    "tests/web/test_every_page_browser.py::test_every_ui_page",
    "tests/messaging/test_kill_loop.py",
    "tests/outbox/test_workers.py",
    "tests/analytics/test_spark.py",
    "tests/sales/test_scoring.py::test_cli_train",
    "tests/chat/test_limits.py::test_two_server",
    "tests/test_demo_service.py",
    "tests/test_cli.py::test_demo",
    "tests/customers/test_card_scan.py::test_real_tesseract",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run on SQLite only, unless marked ``both_backends``.

    What a browser test checks (layout, phone width, axe, the page's JavaScript) does not depend on the database;
    every service and API test under it runs on both backends. Running each browser test twice cost minutes of
    every CI run. A browser test whose point is the database's behaviour (two agents racing for one claim, a
    drag under optimistic locking) is marked ``both_backends`` and keeps its PostgreSQL run. The PostgreSQL
    copies are deselected (counted in pytest's summary), not skipped.
    """
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("engine") == "postgresql"
        if on_pg and item.get_closest_marker("browser") and not item.get_closest_marker("both_backends"):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
    # xdist hands tests out in this order: the slowest (20-90 s each, from the CI's --durations list) go first in
    # their backend's half, so they run while the short ones fill the other workers instead of starting late and
    # leaving one worker busy after the rest are done. The halves stay as pytest made them (all SQLite, then all
    # PostgreSQL, then tests without a database), so no worker sets a database up more often. The sort is stable.
    halves = {"sqlite": 0, "postgresql": 1}

    def order(item: pytest.Item) -> tuple[int, bool]:
        callspec = getattr(item, "callspec", None)
        half = halves.get(callspec.params.get("engine"), 2) if callspec is not None else 2
        return half, not any(slow in item.nodeid for slow in SLOW_FIRST)

    items.sort(key=order)


def _cheap_password_hashing() -> None:
    """Argon2 at its lowest cost in this process: the same algorithm and code path, ~300x cheaper.

    The production cost (64 MiB, 3 passes) took 200 ms a hash on this machine's loaded cores, and most tests make
    a user or two in their fixtures, so hashing alone was minutes of every run. Servers the tests start as
    subprocesses keep the production cost.
    """
    from argon2 import PasswordHasher

    from kizuna.auth import service, signin

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    signin.hasher = cheap
    service.hasher = cheap


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from kizuna.db import make_engine, migrate

    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'kizuna.db'}")
    elif request.param == "postgresql":
        if PG_URL != BASE_PG_URL:
            _ensure_database(PG_URL)
        eng = make_engine(PG_URL)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        raise ValueError(f"unknown test backend {request.param}")
    migrate(eng)
    yield eng
    eng.dispose()


def clean(engine: Engine) -> None:
    from kizuna.db import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    filled: set[str] = set()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # TRUNCATE of every table cost 1.4-1.7 s a test here (each truncated table gets new files), more than
            # most tests themselves. A test fills a few tables: find them in one query, empty only those, and
            # restart every sequence that moved (a rolled-back insert moves one too) as RESTART IDENTITY would.
            # DELETE, children first, then VACUUM rather than TRUNCATE: on a few rows the two take 10-30 ms where
            # TRUNCATE's new files took 80-120 ms, over a thousand PostgreSQL tests a run. The VACUUM frees the
            # deleted rows' slots, so that a test's rows are stored (and read without ORDER BY) in the order it
            # wrote them, as after a TRUNCATE, and not wherever a later prune happens to free space.
            probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in tables)
            filled = set(conn.scalars(text(probe)))
            if filled:
                conn.execute(text("; ".join(f"DELETE FROM {name}" for name in tables if name in filled)))
            conn.execute(
                text(
                    "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) FROM pg_sequences"
                    " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
                )
            )
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            # As RESTART IDENTITY does on PostgreSQL: each test's ids start at 1 on both backends.
            conn.execute(text("DELETE FROM sqlite_sequence"))
    if filled:
        with engine.connect() as conn:
            vacuum = text(f"VACUUM {', '.join(sorted(filled))}")
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(vacuum)
    # What this process cached of the emptied database goes with it (ids restart, so a cached row would be
    # taken for a new one).
    from kizuna.chat import cors
    from kizuna.ingest.sources import forget_keys

    cors.forget()
    forget_keys()


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The engine, with every table emptied before the test."""
    clean(engine)
    return engine


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    from kizuna.db import new_session

    s = new_session(db)
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def admin(session: Session):  # noqa: ANN201
    """An admin user committed to the database, as an Actor."""
    from kizuna.auth import service as auth

    user, _ = auth.ensure_admin(session, email="admin@example.com", password="admin-password-1")
    session.commit()
    return auth.actor_for(user)


def make_token(engine: Engine, email: str, role: str) -> str:
    from kizuna.auth import service as auth
    from kizuna.auth.permissions import Actor
    from kizuna.db import transaction

    with transaction(engine) as s:
        auth.create_user(s, actor=Actor.system("test"), email=email, password="password-123456", role=role)
        _, secret = auth.create_token(s, actor=Actor.system("test"), email=email, name="test")
    return secret


@pytest.fixture
def app(db: Engine):  # noqa: ANN201
    from kizuna.app import create_app

    return create_app(db)


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    """An HTTP client for the API, signed in as an admin."""
    from fastapi.testclient import TestClient

    token = make_token(app.state.engine, "api-admin@example.com", "admin")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


@pytest.fixture
def client_as(app):  # noqa: ANN001, ANN201
    """A factory: an HTTP client signed in with a given role."""
    from fastapi.testclient import TestClient

    made: list[TestClient] = []

    def make(role: str) -> TestClient:
        token = make_token(app.state.engine, f"{role}-{len(made)}@example.com", role)
        c = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(app) -> Iterator[str]:  # noqa: ANN001
    """``kizuna serve`` for real: uvicorn on a loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


CHROMIUM = os.environ.get("KIZUNA_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


def browser_timeouts(page: Any) -> None:
    """A step fails after 10 s, a page load after 30 s: CI runs the suite on two busy cores (browsers, a Spark,
    PostgreSQL and the test servers together), where a page load once took over 10 s while nothing was wrong."""
    from playwright.sync_api import expect

    page.set_default_timeout(10_000)
    page.set_default_navigation_timeout(30_000)
    # expect()'s own default is 5 s, shorter than the step timeout above.
    expect.set_options(timeout=10_000)


@pytest.fixture
def page(browser) -> Iterator[object]:  # noqa: ANN001
    context = browser.new_context(locale="en-US")
    pg = context.new_page()
    browser_timeouts(pg)
    yield pg
    context.close()


@pytest.fixture
def probe() -> Iterator[list]:
    """The probe subscribers declared in this process too (emitting fans out to what the emitter declares)."""
    from kizuna.outbox import registry
    from tests.outbox import probe as module

    for s in module.SUBSCRIBERS:
        registry.register(s)
    yield module.SUBSCRIBERS
    for s in module.SUBSCRIBERS:
        registry.unregister(s.name)
