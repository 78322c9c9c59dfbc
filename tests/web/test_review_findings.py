"""Defects met while walking the Japanese UI as a new marketing user (review of 2026-11-27), each pinned."""

from __future__ import annotations

import re
from pathlib import Path

import kizuna.web

CSS = Path(kizuna.web.__file__).parent / "static" / "kizuna.css"


def _without_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def test_the_stylesheet_closes_every_block_so_later_sections_apply_on_desktop():
    # An unclosed @media block once swallowed every section after it: the 360 summary, the column picker and the
    # analytics grid were styled only below 600 px.
    depth = 0
    for line_no, line in enumerate(_without_comments(CSS.read_text(encoding="utf-8")).splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"a stray closing brace at line {line_no}"
    assert depth == 0


def test_each_area_section_of_the_stylesheet_starts_at_top_level():
    text = CSS.read_text(encoding="utf-8")
    for match in re.finditer(r"/\* === (.+?) === \*/", text):
        before = _without_comments(text[: match.start()])
        assert before.count("{") == before.count("}"), f"section {match.group(1)!r} starts inside an open block"
