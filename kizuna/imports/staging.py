"""Scratch folders of imports in the temporary directory, named by the process that owns them.

An import killed with SIGKILL cannot clean up after itself, so each import first removes the folders of
imports whose process is gone. A folder is ``kizuna-import-<pid>-<random>``; one whose process still runs
(or belongs to another user) is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "kizuna-import-"


def new_stage_dir() -> Path:
    """A fresh scratch folder for this process's import."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def owner_pid(folder: Path) -> int | None:
    pid, sep, _ = folder.name.removeprefix(PREFIX).partition("-")
    return int(pid) if sep and pid.isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_stage_dirs(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders of imports whose process has died; returns the folders removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        pid = owner_pid(folder)
        if pid is None or pid == os.getpid() or not folder.is_dir() or folder.is_symlink():
            continue
        if folder.stat().st_uid != os.getuid() or process_alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
