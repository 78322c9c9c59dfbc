"""What a browser test checks of a page on a phone: it fits 390 px and axe-core finds nothing serious."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from axe_playwright_python.base import AXE_SCRIPT

BLOCKING = ("serious", "critical")


def page_problems(page: Any, where: str) -> list[str]:
    """The open page's overflow and its serious or critical axe violations, each prefixed with ``where``."""
    problems = []
    scroll, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    if scroll > inner:
        problems.append(f"{where}: {scroll}px wide in {inner}px")
    page.evaluate(AXE_SCRIPT)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    problems += [
        f"{where}: {v['id']} {v['help']} {[n['target'] for n in v['nodes'][:2]]}"
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]
    return problems


def phone_problems(page: Any, live_server: str, paths: Iterable[str], langs: Iterable[str] = ("ja", "en")) -> list[str]:
    """``page_problems`` of each path at 390 px, in each language."""
    problems = []
    for lang in langs:
        page.goto(f"{live_server}/lang/{lang}?next=/home")
        page.set_viewport_size({"width": 390, "height": 900})
        for path in paths:
            page.goto(f"{live_server}{path}")
            problems += page_problems(page, f"{path} [{lang}]")
    return problems
