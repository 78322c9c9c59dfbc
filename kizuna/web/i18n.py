"""UI translations: flat JSON catalogs and the language a request is shown in.

A language's catalog is ``web/locale/<lang>.json`` plus every ``web/locale/<lang>/<area>.json``: each area of the
UI (imports, duplicates, admin, ...) keeps its texts in its own file, so that work on two areas never edits the
same file. A key defined in two files is an error, not a silent override.
"""

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


def catalog_files(lang: str) -> list[Path]:
    """The files that make up ``lang``'s catalog, the main one first."""
    return [LOCALE_DIR / f"{lang}.json", *sorted((LOCALE_DIR / lang).glob("*.json"))]


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    """The catalog of ``lang``: key -> text (with ``{name}`` placeholders)."""
    merged: dict[str, str] = {}
    seen_in: dict[str, Path] = {}
    for path in catalog_files(lang):
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            if key in merged:
                raise ValueError(f"translation key '{key}' is defined in both {seen_in[key].name} and {path.name}")
            merged[key] = text
            seen_in[key] = path
    return merged


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
