"""Helpers for import tests: files written exactly as a spreadsheet or shop system would write them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """Write ``lines`` (already CSV text) to a file in the given encoding; returns its path."""

    def write(lines: list[str], *, name: str = "data.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
        return path

    return write
