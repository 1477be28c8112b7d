"""Domain errors — one root, each with a machine code, a human sentence and an HTTP-ish status.

    DomainError
    ├── InvalidInput            400 invalid_input
    ├── Unauthenticated         401 unauthenticated / invalid_credentials / invalid_token
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict
    │   ├── PasswordNotAllowed  409 password_not_allowed
    │   └── LastAdminError      409 last_local_admin
    ├── PreconditionFailed      412 precondition_failed (stale If-Match)
    ├── TooManyAttempts         429 locked_out / rate_limited (retry_after seconds)
    └── Unavailable             503 unavailable

The web layer turns each into ``{"error": code, "detail": detail}`` in one exception handler.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    code = "error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    status = 400
    code = "invalid_input"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PasswordNotAllowed(Conflict):
    code = "password_not_allowed"


class LastAdminError(Conflict):
    code = "last_local_admin"


class PreconditionFailed(DomainError):
    status = 412
    code = "precondition_failed"


class TooManyAttempts(DomainError):
    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = max(1, int(retry_after))


class Unavailable(DomainError):
    status = 503
    code = "unavailable"
