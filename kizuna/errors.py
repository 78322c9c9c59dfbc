"""Domain errors. Each carries a message a user can act on; the HTTP edge maps them to a status once.

The message is English (the API's language). An error a person may see in the UI also names a translation
``key`` (``error.<something>`` in the UI catalogs) and the ``params`` its text needs; the UI shows that text in
the user's language and falls back to the message for errors without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KizunaError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, field: str | None = None, key: str | None = None, params: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.key = key
        self.params = params or {}


class ValidationError(KizunaError):
    status_code = 422
    code = "invalid"


class NotFound(KizunaError):
    status_code = 404
    code = "not_found"


class Conflict(KizunaError):
    """The record changed since the caller read it, or a unique value is already taken."""

    status_code = 409
    code = "conflict"


class PreconditionFailed(KizunaError):
    status_code = 412
    code = "precondition_failed"


class PreconditionRequired(KizunaError):
    status_code = 428
    code = "precondition_required"


class NotAuthenticated(KizunaError):
    status_code = 401
    code = "not_authenticated"


class PermissionDenied(KizunaError):
    status_code = 403
    code = "forbidden"


class TooManyAttempts(KizunaError):
    """Sign-in refused without checking the password: the account or the address tried too often."""

    status_code = 429
    code = "too_many_attempts"


# Pydantic's context values a translated message may name ({max_length}, {expected} ...).
_PYDANTIC_CTX_NAMES = (
    "max_length", "min_length", "expected", "limit", "value", "ge", "le", "gt", "lt", "max_digits", "decimal_places",
    "message",
)  # fmt: skip


def pydantic_message(error: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The translation key (``error.<type>``) and params of one of Pydantic's errors.

    The one mapping from Pydantic's error types to catalog keys, for the UI's forms and the import's rejects
    alike; a type without a text in the catalogs is shown with Pydantic's English message.
    """
    kind = str(error.get("type", ""))
    if kind in ("too_long", "too_short") and isinstance(error.get("input"), str):
        # A length limit on an annotated text type (Text, Kana) is reported as a sequence's: it is about characters.
        kind = f"string_{kind}"
    ctx = error.get("ctx") or {}
    params = {name: ctx[name] for name in _PYDANTIC_CTX_NAMES if name in ctx}
    if "value" not in params and isinstance(error.get("input"), (str, int, float)):
        params["value"] = error["input"]
    if kind == "value_error" and "message" not in params:
        # A model's own check (a plain ValueError): its text is the message, not Pydantic's "Value error, ...".
        params["message"] = str(ctx.get("error") or error.get("msg", ""))
    return f"error.{kind}", params
