"""Server-side form handling for the UI: what the user typed, and the errors to show next to each field.

Every UI form follows one pattern (see ``ui_customers.customer_edit``): the handler reads the form into a
``FormState``, builds the domain's Pydantic input from it and calls the service inside ``submit``. When the
input or the service refuses, nothing is committed, and the page is rendered again with status 422 (409 for a
stale edit), the user's own text in every field and a message next to each field, in the user's language.
Templates render fields with the macros in ``templates/_form.html``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic
from starlette.datastructures import FormData

from kizuna.errors import KizunaError
from kizuna.web.i18n import catalog

# Pydantic's own error types that a form can produce, each with a text under ``error.<type>`` in the catalogs.
# Other types fall back to Pydantic's English message (and say so in a test when a form shows one).
_CTX_NAMES = ("max_length", "min_length", "expected", "limit", "value", "ge", "le", "gt", "lt", "message")


@dataclass
class FormState:
    """One form as submitted: the raw values (echoed back into the fields) and errors per field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.general

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)

    def error(self, name: str) -> str:
        return self.errors.get(name, "")

    def add(self, name: str | None, message: str) -> None:
        """Put ``message`` next to field ``name``; an error that names no field of this form is shown on top."""
        if name and name in self.values and name not in self.errors:
            self.errors[name] = message
        elif not name or name not in self.errors:
            self.general.append(message)


def read_form(form: FormData | Mapping[str, Any], fields: tuple[str, ...]) -> FormState:
    """The named fields as typed (a field sent several times, such as a tag list, keeps its values joined by
    newlines); the CSRF token and unknown fields are left out."""
    values: dict[str, str] = {}
    for name in fields:
        if isinstance(form, FormData):
            many = [v for v in form.getlist(name) if isinstance(v, str)]
            values[name] = "\n".join(many) if len(many) > 1 else (many[0] if many else "")
        else:
            raw = form.get(name, "")
            values[name] = raw if isinstance(raw, str) else str(raw)
    return FormState(values=values)


def translate_error(t: Callable[..., str], lang: str, exc: KizunaError) -> str:
    """The error's text in the user's language when it names a translation, else its (English) message."""
    if exc.key and exc.key in catalog(lang):
        return t(exc.key, **exc.params)
    return exc.message


def translate_pydantic(t: Callable[..., str], lang: str, error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind in ("too_long", "too_short") and isinstance(error.get("input"), str):
        # A length limit on an annotated text type (Text, Kana) is reported as a sequence's: it is about characters.
        kind = f"string_{kind}"
    key = f"error.{kind}"
    if key in catalog(lang):
        ctx = error.get("ctx") or {}
        params = {name: ctx[name] for name in _CTX_NAMES if name in ctx}
        if "value" not in params and isinstance(error.get("input"), (str, int, float)):
            params["value"] = error["input"]
        try:
            return t(key, **params)
        except (KeyError, IndexError):
            pass
    return str(error.get("msg", ""))


def collect(state: FormState, t: Callable[..., str], lang: str, exc: Exception) -> None:
    """Record why a submission was refused on ``state``: Pydantic's errors per field, or a domain error."""
    if isinstance(exc, pydantic.ValidationError):
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
            state.add(loc[0] if loc else None, translate_pydantic(t, lang, error))
    elif isinstance(exc, KizunaError):
        state.add(exc.field, translate_error(t, lang, exc))
    else:  # pragma: no cover - callers pass only the two kinds above
        raise exc


def submit(state: FormState, t: Callable[..., str], lang: str, action: Callable[[], Any]) -> Any:
    """Run ``action`` (build the input, call the service); on a refusal record it on ``state`` and return None.

    The caller commits only when ``state.ok``; on a refusal it rolls back, so nothing is half-saved.
    """
    try:
        return action()
    except (pydantic.ValidationError, KizunaError) as exc:
        if isinstance(exc, KizunaError) and exc.status_code in (401, 403, 404):
            raise  # not a problem with what was typed: the page's usual error handling answers
        collect(state, t, lang, exc)
        return None


def blank_to_none(values: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str | None]:
    """The named fields with empty text as None: an empty form field means "no value", not an empty string."""
    return {name: (values.get(name, "").strip() or None) for name in names}
