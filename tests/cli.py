"""Run the ``kizuna`` command inside the test process.

A ``python -m kizuna`` subprocess pays 2-5 s of interpreter start and imports (Ibis, DuckDB, FastAPI) on these
loaded cores before it does anything, and the CLI tests ran dozens of them a backend. This runs the same Typer
app, with the same environment variables and freshly read settings, and answers like ``subprocess.run``. Tests
of what only a process shows (signals, a killed worker, ``kizuna serve``, the entry point itself) keep
starting real processes.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from typer.testing import CliRunner


@contextmanager
def _environment(values: dict[str, str]) -> Any:
    from kizuna.config import get_settings
    from kizuna.db import get_engine

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        # The command's engine is for this call alone: close its connections (a pooled PostgreSQL connection
        # would otherwise outlive the test's database) and let the next call read the settings afresh.
        if get_engine.cache_info().currsize:
            get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def kizuna(
    *args: str, engine: Engine | None = None, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:  # noqa: A002
    """``kizuna ARGS`` against ``engine``'s database (and ``env`` as environment variables), in this process."""
    from kizuna.cli import app

    values = dict(env)
    if engine is not None:
        values["KIZUNA_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    with _environment(values):
        result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
