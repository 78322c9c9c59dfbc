"""The floor of the import's design: the statements the import executed, replayed through the bare driver.

``Recorder`` watches one real import (every statement and its bound parameters as they reached the driver,
executemany or not, every COMMIT and ROLLBACK, PostgreSQL's COPY rows, and a hard link to each staged range
file a parser process handed over on SQLite). ``replay_sqlite`` / ``replay_postgresql`` then run exactly that
sequence on a fresh database of the same schema (``kizuna.db.migrate``) with nothing but ``sqlite3`` or
``psycopg``: same tables and indexes, same INSERT ... SELECT shapes, same batches and commits, on rows that
were parsed, normalised and bound beforehand. What the import costs above this floor is Kizuna's own work
(parsing runs beside it in other processes), SQLAlchemy and Python between the statements.

Recording rather than a hand-written copy of the statements keeps the floor from drifting when the importer
changes; the statements are derived from the code that runs.
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import ExecuteStyle

# What kizuna.db gives every SQLite connection when it opens (its "connect" listener runs them on the driver
# connection, where the recorder does not see them). replay_sqlite checks they match the engine's.
SQLITE_CONNECT_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=15000",
    "PRAGMA cache_size=-65536",
)
_CHECKED_PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "cache_size")


@dataclass
class Floor:
    statements: int
    seconds: float
    cpu_seconds: float  # this process, plus the PostgreSQL server process on PostgreSQL
    # Seconds per statement text (its first line), the costliest first: where the floor's time goes.
    costliest: list[tuple[float, int, str]] = field(default_factory=list)


@dataclass
class Recorder:
    """Statements of one import, in order: ("execute" | "executemany" | "copy", sql, params), "commit", "rollback"."""

    steps: list[Any] = field(default_factory=list)
    keep: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kizuna-bench-floor-")))

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._execute, retval=True)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)
        if engine.dialect.name == "postgresql":
            import kizuna.imports.bulk as bulk

            original = bulk.copy_rows

            def copy_rows(cursor: Any, statement: str, rows: list[tuple[Any, ...]]) -> None:
                self.steps.append(("copy", statement, rows))
                original(cursor, statement, rows)

            bulk.copy_rows = copy_rows

    def _execute(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        if statement.startswith("ATTACH DATABASE"):
            # The writer deletes a staged range once it is written; keep it (a hard link) for the replay.
            kept = self.keep / f"{len(self.steps)}.db"
            os.link(parameters[0], kept)
            self.steps.append(("execute", statement, (str(kept),)))
        else:
            # SQLAlchemy's "insertmanyvalues" (an ORM flush of many rows with RETURNING) reports ``many`` but sends
            # one multi-row INSERT with a flat parameter tuple through the driver's execute.
            batched = context is not None and context.execute_style is ExecuteStyle.INSERTMANYVALUES
            self.steps.append(("executemany" if many and not batched else "execute", statement, parameters))
        return statement, parameters

    def _commit(self, conn: Any) -> None:
        self.steps.append("commit")

    def _rollback(self, conn: Any) -> None:
        self.steps.append("rollback")

    def close(self) -> None:
        shutil.rmtree(self.keep, ignore_errors=True)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(cursor: Any, connection: Any, steps: list[Any]) -> list[tuple[float, int, str]]:
    spent: dict[str, list[float]] = {}
    clock = time.perf_counter
    for step in steps:
        started = clock()
        _step(cursor, connection, step)
        name = step if isinstance(step, str) else f"{step[0]} {' '.join(step[1].split())[:150]}"
        spent.setdefault(name, []).append(clock() - started)
    return sorted(((sum(t), len(t), name) for name, t in spent.items()), reverse=True)


def _step(cursor: Any, connection: Any, step: Any) -> None:
    if step == "commit":
        connection.commit()
    elif step == "rollback":
        connection.rollback()
    elif step[0] == "executemany":
        cursor.executemany(step[1], step[2])
    elif step[0] == "copy":
        with cursor.copy(step[1]) as copy:
            for row in step[2]:
                copy.write_row(row)
    else:
        cursor.execute(step[1], step[2])
        if cursor.description is not None:
            cursor.fetchall()


def replay_sqlite(path: Path, recorder: Recorder, engine_pragmas: dict[str, Any]) -> Floor:
    """Run the recorded statements on the fresh database file ``path`` with bare ``sqlite3``."""
    connection = sqlite3.connect(path, timeout=15)
    try:
        cursor = connection.cursor()
        for pragma in SQLITE_CONNECT_PRAGMAS:
            cursor.execute(pragma)
        mine = {name: cursor.execute(f"PRAGMA {name}").fetchone()[0] for name in _CHECKED_PRAGMAS}
        if mine != engine_pragmas:
            raise RuntimeError(f"the floor's connection differs from Kizuna's: {mine} != {engine_pragmas}")
        cpu, started = _own_cpu(), time.perf_counter()
        costliest = _run(cursor, connection, recorder.steps)
        return Floor(len(recorder.steps), time.perf_counter() - started, _own_cpu() - cpu, costliest)
    finally:
        connection.close()


def sqlite_pragmas(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in _CHECKED_PRAGMAS}


def backend_cpu(pids: list[int]) -> float:
    """User + system CPU of PostgreSQL server processes (from /proc; the server runs on this machine)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def replay_postgresql(url: str, recorder: Recorder) -> Floor:
    """Run the recorded statements (and COPYs) on a freshly migrated PostgreSQL database with bare ``psycopg``."""
    import psycopg

    with psycopg.connect(url) as connection:
        backend = connection.info.backend_pid
        cursor = connection.cursor()
        cpu, server, started = _own_cpu(), backend_cpu([backend]), time.perf_counter()
        costliest = _run(cursor, connection, recorder.steps)
        seconds = time.perf_counter() - started
        return Floor(len(recorder.steps), seconds, _own_cpu() - cpu + backend_cpu([backend]) - server, costliest)
