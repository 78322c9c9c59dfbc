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

from kizuna.errors import KizunaError, pydantic_message
from kizuna.web.i18n import catalog


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


def translate(t: Callable[..., str], lang: str, key: str | None, params: Mapping[str, Any], fallback: str) -> str:
    """The text of ``key`` in the user's language, or ``fallback`` (English) when the catalog has no such key or
    the params do not fill its text."""
    if key and key in catalog(lang):
        try:
            return t(key, **params)
        except (KeyError, IndexError):
            pass
    return fallback


def translate_error(t: Callable[..., str], lang: str, exc: KizunaError) -> str:
    """The error's text in the user's language when it names a translation, else its (English) message."""
    return translate(t, lang, exc.key, exc.params, exc.message)


def translate_pydantic(t: Callable[..., str], lang: str, error: Mapping[str, Any]) -> str:
    # Pydantic's own error types that a form can produce each have a text under ``error.<type>`` in the
    # catalogs; other types fall back to Pydantic's English message.
    key, params = pydantic_message(error)
    return translate(t, lang, key, params, str(error.get("msg", "")))


def collect(state: FormState, t: Callable[..., str], lang: str, exc: Exception) -> None:
    """Record why a submission was refused on ``state``: Pydantic's errors per field, or a domain error."""
    if isinstance(exc, pydantic.ValidationError):
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ())]
            # FastAPI puts "body" before a request body's fields; a model's own field may be named "body" too.
            if len(loc) > 1 and loc[0] == "body":
                loc = loc[1:]
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
