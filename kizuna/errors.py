"""Domain errors. Each carries a message a user can act on; the HTTP edge maps them to a status once."""

from __future__ import annotations


class KizunaError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


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
