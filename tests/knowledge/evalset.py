"""The sample knowledge base and question sets in tests/knowledge/data, as the retrieval code takes them."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def articles() -> list[dict]:
    """The sample articles (a fictional tea shop, ja and en), each with a ``key`` the question sets name."""
    return json.loads((DATA / "articles.json").read_text(encoding="utf-8"))


def question_set(name: str, ids: dict[str, int]) -> tuple[list[tuple[str, int]], list[str]]:
    """(question, article id) pairs and out-of-scope questions of ``evaluation`` or ``tuning``."""
    data = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return [(q, ids[key]) for q, key in data["answerable"]], list(data["out_of_scope"])
