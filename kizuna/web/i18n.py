"""UI translations: flat JSON catalogs (``web/locale/<lang>.json``) and the language a request is shown in."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from kizuna.config import get_settings

LANGUAGES = ("ja", "en")
LANG_COOKIE = "kizuna_lang"
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    """The catalog of ``lang``: key -> text (with ``{name}`` placeholders)."""
    return json.loads((LOCALE_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` for one language; a missing key shows the key itself (and fails the parity test)."""
    texts = catalog(lang)

    def t(key: str, **values: Any) -> str:
        text = texts.get(key, key)
        return text.format(**values) if values else text

    return t


def choose_language(cookie: str | None, user_locale: str | None = None) -> str:
    """The cookie the user picked, else the user's own locale, else the configured default."""
    for candidate in (cookie, user_locale, get_settings().default_locale):
        if candidate in LANGUAGES:
            return candidate
    return LANGUAGES[0]
