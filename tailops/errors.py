"""The one exception hierarchy of tailops.

Every failure a caller can see is one of these. Library exceptions (sqlite3,
docker, psutil, ansible-runner, httpx, dns) are translated where they enter
tailops (``raise X(...) from exc``); nothing above an adapter catches a library
exception. The MCP boundary (``tailops.tools.registry``), the HTTP boundary
(``tailops.server``) and the CLI each map this tree in exactly one place, and
``tests/unit/test_errors.py`` fails when a class has no mapping.

    TailopsError
    ├── ConfigError                  bad configuration (CLI exit 2)
    ├── InvalidInput (ValueError)    an argument the caller can fix
    │   └── NotFound (LookupError)   a named thing does not exist
    ├── AuthError                    who you are could not be established (HTTP 401)
    ├── PermissionDenied             you may not do this (missing scope, policy)
    │   ├── PathRefused              file access outside the allowed roots / rules
    │   └── TargetRefused            network target refused by the target policy
    ├── RateLimited                  too many requests; retry after N seconds
    ├── Unavailable                  a dependency is down (Docker engine, …)
    ├── OperationTimeout             a bounded operation ran out of time
    ├── StoreError                   the SQLite store failed
    ├── AuditError                   the audit log could not be written or verified
    └── ChangeError                  the change engine refused or failed
        ├── CatalogError             catalog/manifest/lock problem (drift included)
        ├── StalePlan                a plan no longer matches reality
        ├── ApprovalError            missing/invalid approval
        └── RunnerError              ansible-runner failed to run at all

Messages are written for a person (or a model) who has to act on them: they say
what was refused and what to do instead. They never contain secrets or file
content.
"""

from __future__ import annotations

__all__ = [
    "ApprovalError",
    "AuditError",
    "AuthError",
    "CatalogError",
    "ChangeError",
    "ConfigError",
    "InvalidInput",
    "NotFound",
    "OperationTimeout",
    "PathRefused",
    "PermissionDenied",
    "RateLimited",
    "RunnerError",
    "StalePlan",
    "StoreError",
    "TailopsError",
    "TargetRefused",
    "Unavailable",
]


class TailopsError(Exception):
    """Base of every error tailops raises on purpose.

    ``code`` is a stable machine-readable identifier (part of the tool error
    text), ``hint`` an optional sentence saying what to do next.
    """

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def public_message(self) -> str:
        """The text shown to a client: message plus hint, never a traceback."""
        if self.hint:
            return f"{self.message} {self.hint}"
        return self.message


class ConfigError(TailopsError):
    code = "config_error"


class InvalidInput(TailopsError, ValueError):
    code = "invalid_input"


class NotFound(InvalidInput, LookupError):
    code = "not_found"


class AuthError(TailopsError):
    code = "unauthenticated"


class PermissionDenied(TailopsError):
    code = "permission_denied"


class PathRefused(PermissionDenied):
    code = "path_refused"


class TargetRefused(PermissionDenied):
    code = "target_refused"


class RateLimited(TailopsError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class Unavailable(TailopsError):
    code = "unavailable"


class OperationTimeout(TailopsError):
    code = "timeout"


class StoreError(TailopsError):
    code = "store_error"


class AuditError(TailopsError):
    code = "audit_error"


class ChangeError(TailopsError):
    code = "change_error"


class CatalogError(ChangeError):
    code = "catalog_error"


class StalePlan(ChangeError):
    code = "stale_plan"


class ApprovalError(ChangeError):
    code = "approval_error"


class RunnerError(ChangeError):
    code = "runner_error"


# HTTP status for each class, used by the HTTP boundary and by tests that check
# every class is mapped. Lookup walks the MRO, but each class is listed so a new
# class must be placed on purpose.
HTTP_STATUS: dict[type[TailopsError], int] = {
    TailopsError: 500,
    ConfigError: 500,
    InvalidInput: 400,
    NotFound: 404,
    AuthError: 401,
    PermissionDenied: 403,
    PathRefused: 403,
    TargetRefused: 403,
    RateLimited: 429,
    Unavailable: 503,
    OperationTimeout: 504,
    StoreError: 500,
    AuditError: 500,
    ChangeError: 409,
    CatalogError: 409,
    StalePlan: 409,
    ApprovalError: 403,
    RunnerError: 502,
}


def is_refusal(exc: BaseException | None) -> bool:
    """True when ``exc`` is a rule saying no (who you are, what you may do, an approval rule,
    a rate limit), not a failure of the work itself. Audit records call these ``denied``
    wherever the refusal happened: before a tool body, inside it, or on the review page."""
    return isinstance(exc, AuthError | PermissionDenied | ApprovalError | RateLimited)


def http_status(exc: TailopsError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
