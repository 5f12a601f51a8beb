"""Send one rendered request with hard time limits and classify what happened.

Why separate: this is the only place that touches the network (httpx, imported
when the worker starts, not at server start). Every attempt is bounded three ways —
the connect timeout, httpx's per-read/write timeouts, and a total deadline
(``anyio.fail_after``) that also stops a receiver dripping one byte at a time — so a
hanging receiver holds one delivery slot for at most its endpoint's ``timeout``.

Redirects are not followed (a 3xx is a failure), the response body is never read or
stored, proxies/netrc from the environment are ignored, and error texts are written
here from the exception class: never the URL (a Slack URL is a secret), never a
receiver's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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


def make_client(max_connections: int) -> httpx.AsyncClient:
    import httpx

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
        return Result("error", error=f"{type(exc).__name__}: {exc.strerror or 'network error'}")
    if 200 <= status < 300:
        return Result("delivered", status=status)
    if 300 <= status < 400:
        return Result("failed", status=status, error=f"HTTP {status} (redirects are not followed)")
    return Result("failed", status=status, error=f"HTTP {status}", retry_after=retry_after)


def _reason(exc: Exception) -> str:
    """The OS reason under an httpx error (e.g. 'Connection refused'), never its text that may hold the URL."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return "request failed"
