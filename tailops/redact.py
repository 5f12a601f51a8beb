"""Secret redaction shared by logs, the audit log, errors and run artifacts.

Two nets: by key name (``password``, ``token``, ``secret``, ``authorization``,
``private_key``, ``*_key``…, camelCase too) and by value shape (JWTs, bearer
headers, PEM blocks, AWS/GitHub/Slack/Tailscale/GitLab keys, ``user:pass@`` in
URLs, ``PASSWORD=…`` pairs in free text). Anything caught becomes
``"[REDACTED]"``. Used on every structure that leaves the process for a file or
a client, so a secret passed as a tool argument or an environment value never
lands on disk.

It runs on every audited call, so the common case is cheap: key names are
classified once (cached), and text only goes through the substitutions when one
combined pattern says something in it could be a secret. Over-redaction is
acceptable; a missed secret is not.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text"]

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?s?|secrets?|tokens?|api[_-]?keys?|apikeys?|auth(orization)?|credentials?|"
    r"private[_-]?keys?|cookies?|session[_-]?id|access[_-]?keys?|bearer|jwt|signature|otp|"
    r"(^|_)keys?)$|^(pwd|pw|pin)$",
    re.IGNORECASE,
)
# "sshKey" -> "ssh_Key", "HTTPAuthorization" -> "HTTP_Authorization"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Value shapes replaced whole (each with its own flags, so they can be combined below).
_SHAPES: tuple[str, ...] = (
    # JWT / JWS compact form: three base64url parts, the first starting eyJ.
    r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    # Authorization header values.
    r"(?i:\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,})",
    # PEM private keys (whole block, or to the end when the END line is missing).
    r"(?s:-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))",
    # Credentials inside URLs: scheme://user:pass@host
    r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)",
    # AWS access key ids; GitHub and Slack tokens.
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abpr]-[A-Za-z0-9-]{10,})\b",
    # Tailscale auth/API keys, GitLab tokens, "sk-" style API keys.
    r"\b(?:tskey-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{16,}|sk-[A-Za-z0-9_-]{20,})",
)
_SHAPE_PATTERNS = tuple(re.compile(p) for p in _SHAPES)
# key=value / key: value pairs inside free text (env dumps, command lines): only the value goes.
_PAIR = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)[A-Z0-9_]*)(\s*[=:]\s*)"
    r"(\"[^\"]*\"|'[^']*'|\S+)"
)
# Every pattern above contains one of these (lower-cased) literals; text without any of
# them is returned as is (a C substring scan instead of eight regex substitutions).
_MARKERS: tuple[str, ...] = (
    "eyj",
    "bearer",
    "basic",
    "private key",
    "://",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "tskey-",
    "glpat-",
    "sk-",
    "passw",
    "secret",
    "token",
    "apikey",
    "api_key",
    "private_key",
    "privatekey",
)
# No pattern matches fewer characters than this ("token=x" is the shortest).
_MIN_SECRET_LEN = 7


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (``db_password``, ``Authorization``…)."""
    normalized = _CAMEL.sub("_", key).replace("-", "_").replace(".", "_")
    return bool(_SECRET_KEY.search(normalized))


def redact_text(text: str) -> str:
    """Replace secret-looking substrings of free text."""
    if len(text) < _MIN_SECRET_LEN:
        return text
    if len(text) <= _CACHED_LEN:
        return _redact_short(text)
    return _redact_text(text)


# Audit entries repeat the same short strings (tool names, addresses, subjects) on every call.
_CACHED_LEN = 200


@functools.lru_cache(maxsize=8192)
def _redact_short(text: str) -> str:
    return _redact_text(text)


def _redact_text(text: str) -> str:
    low = text.lower()
    if not any(marker in low for marker in _MARKERS):
        return text
    out = text
    for pattern in _SHAPE_PATTERNS:
        out = pattern.sub(REDACTED, out)
    return _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)


def _secret_key(key: Any) -> bool:
    # Absurdly long key names are not classified (or cached): their values are hidden.
    return isinstance(key, str) and (len(key) >= 256 or is_secret_key(key))


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secrets replaced; never mutates the input."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if _depth > 32:
        return REDACTED
    if isinstance(value, dict | Mapping):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            shown = redact_text(key) if isinstance(key, str) else key  # a secret used as a key
            if item not in (None, "", [], {}) and _secret_key(key):
                result[shown] = REDACTED
            else:
                result[shown] = redact(item, _depth=_depth + 1)
        return result
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth=_depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"[{len(value)} bytes]"
    return value
