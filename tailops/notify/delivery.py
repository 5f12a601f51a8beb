"""Send one rendered request with hard time limits and classify what happened.

Why separate: this is the only place that touches the network (httpx, imported
when the worker starts, not at server start). Every attempt is bounded three ways —
the connect timeout, httpx's per-read/write timeouts, and a total deadline
(``anyio.fail_after``) that also stops a receiver dripping one byte at a time — so a
hanging receiver holds one delivery slot for at most its endpoint's ``timeout``.

Redirects are not followed (a 3xx is a failure), the response body is never read or
stored, proxies/netrc from the environment are ignored, and error texts are written
here from the exception class: never the URL (a Slack URL is a secret), never a
receiver's words. httpx's own request log line is cut to the URL's origin.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import anyio

from tailops.notify.formats import Request

if TYPE_CHECKING:
    import httpx

__all__ = ["Result", "make_client", "send"]

Outcome = Literal["delivered", "failed", "timeout", "error"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class _OriginOnly(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST <url> ..."); a Slack
    webhook URL is a credential, so on this logger the URL is cut to its origin."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2 and str(record.msg).startswith("HTTP Request"):
            args = list(record.args)
            parts = urlsplit(str(args[1]))
            args[1] = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
            record.args = tuple(args)
        return True


_FILTER = _OriginOnly()


def make_client(max_connections: int) -> httpx.AsyncClient:
    import httpx

    httpx_log = logging.getLogger("httpx")
    if _FILTER not in httpx_log.filters:
        httpx_log.addFilter(_FILTER)

    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: the backoff decides
    return seconds if 0 <= seconds < 86400 else None


async def send(
    client: httpx.AsyncClient,
    request: Request,
    *,
    timeout: float,  # noqa: ASYNC109 - applied with anyio.fail_after below, plus httpx's own limits
    connect_timeout: float,
) -> Result:
    """POST ``request``; never raises for a network or HTTP problem (it becomes the Result)."""
    import httpx

    limits = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
    try:
        with anyio.fail_after(timeout):
            async with client.stream(
                "POST", request.url, content=request.body, headers=request.headers, timeout=limits
            ) as response:
                status = response.status_code
                retry_after = _retry_after(response.headers.get("retry-after"))
    except TimeoutError:
        return Result("timeout", error=f"no complete answer within {timeout:g}s")
    except httpx.ConnectTimeout:
        return Result("timeout", error=f"connect timeout ({min(connect_timeout, timeout):g}s)")
    except httpx.TimeoutException as exc:
        return Result("timeout", error=f"{type(exc).__name__} ({timeout:g}s)")
    except httpx.HTTPError as exc:
        return Result("error", error=f"{type(exc).__name__}: {_reason(exc)}")
    except OSError as exc:
        return Result("error", error=f"{type(exc).__name__}: {_reason(exc)}")
    if 200 <= status < 300:
        return Result("delivered", status=status)
    if 300 <= status < 400:
        return Result("failed", status=status, error=f"HTTP {status} (redirects are not followed)")
    return Result("failed", status=status, error=f"HTTP {status}", retry_after=retry_after)


def _reason(exc: Exception) -> str:
    """The OS reason under an httpx error (e.g. 'Connection refused'), never its text that may hold the URL."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return "request failed"
