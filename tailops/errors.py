"""The one exception hierarchy of tailops.

Every failure a caller can see is one of these. Library exceptions (sqlite3,
docker, psutil, ansible-runner, httpx, dns) are translated where they enter
tailops (``raise X(...) from exc``); nothing above an adapter catches a library
exception. Every surface maps this tree through the tables at the end of this
module — tool results (the ``code`` prefix), JSON-RPC errors of protocol handlers
(:data:`JSONRPC_CODE`), HTTP statuses (:data:`HTTP_STATUS`), CLI exit codes
(:data:`CLI_EXIT`) and audit decisions (:func:`is_refusal`) — and
``tests/unit/test_errors.py`` fails when a class has no mapping for a surface.

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
    "CLI_EXIT",
    "HTTP_STATUS",
    "JSONRPC_CODE",
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
    "cli_exit_code",
    "http_status",
    "is_refusal",
    "jsonrpc_code",
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
    return _lookup(HTTP_STATUS, exc, 500)


# JSON-RPC error code for each class when a protocol handler (resources, completion,
# subscriptions) refuses: invalid params (-32602), invalid request (-32600), internal (-32603).
JSONRPC_INVALID_PARAMS = -32602
JSONRPC_INVALID_REQUEST = -32600
JSONRPC_INTERNAL_ERROR = -32603
JSONRPC_CODE: dict[type[TailopsError], int] = {
    TailopsError: JSONRPC_INTERNAL_ERROR,
    ConfigError: JSONRPC_INTERNAL_ERROR,
    InvalidInput: JSONRPC_INVALID_PARAMS,
    NotFound: JSONRPC_INVALID_PARAMS,
    AuthError: JSONRPC_INVALID_REQUEST,
    PermissionDenied: JSONRPC_INVALID_REQUEST,
    PathRefused: JSONRPC_INVALID_REQUEST,
    TargetRefused: JSONRPC_INVALID_REQUEST,
    RateLimited: JSONRPC_INVALID_REQUEST,
    Unavailable: JSONRPC_INTERNAL_ERROR,
    OperationTimeout: JSONRPC_INTERNAL_ERROR,
    StoreError: JSONRPC_INTERNAL_ERROR,
    AuditError: JSONRPC_INTERNAL_ERROR,
    ChangeError: JSONRPC_INTERNAL_ERROR,
    CatalogError: JSONRPC_INTERNAL_ERROR,
    StalePlan: JSONRPC_INTERNAL_ERROR,
    ApprovalError: JSONRPC_INVALID_REQUEST,
    RunnerError: JSONRPC_INTERNAL_ERROR,
}

# CLI exit code for each class: 2 for what the user can fix in the command line or config,
# 1 for everything else.
CLI_EXIT: dict[type[TailopsError], int] = {
    TailopsError: 1,
    ConfigError: 2,
    InvalidInput: 2,
    NotFound: 2,
    AuthError: 1,
    PermissionDenied: 1,
    PathRefused: 1,
    TargetRefused: 1,
    RateLimited: 1,
    Unavailable: 1,
    OperationTimeout: 1,
    StoreError: 1,
    AuditError: 1,
    ChangeError: 1,
    CatalogError: 1,
    StalePlan: 1,
    ApprovalError: 1,
    RunnerError: 1,
}


def _lookup(table: dict[type[TailopsError], int], exc: TailopsError, default: int) -> int:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default


def jsonrpc_code(exc: TailopsError) -> int:
    return _lookup(JSONRPC_CODE, exc, JSONRPC_INTERNAL_ERROR)


def cli_exit_code(exc: TailopsError) -> int:
    return _lookup(CLI_EXIT, exc, 1)
