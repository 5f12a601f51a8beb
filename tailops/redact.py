"""Secret redaction shared by logs, the audit log, errors and run artifacts.

Two nets: by key name (``password``, ``token``, ``secret``, ``authorization``,
``private_key``…) and by value shape (JWTs, bearer headers, PEM blocks, AWS-style
keys, ``user:pass@`` in URLs). Anything caught becomes ``"[REDACTED]"``. Used on
every structure that leaves the process for a file or a client, so a secret
passed as a tool argument or an environment value never lands on disk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text"]

REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|auth(orization)?|credential|private[_-]?key|"
    r"cookie|session[_-]?id|access[_-]?key|bearer|jwt)$|^(pwd|pw)$",
    re.IGNORECASE,
)

_VALUE_PATTERNS: tuple[re.Pattern[str], ...] = (
    # JWT / JWS compact form: three base64url parts, the first starting eyJ.
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Authorization header values.
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # PEM private keys (whole block).
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL),
    # Credentials inside URLs: scheme://user:pass@host
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    # AWS access key ids and GitHub/Slack style tokens.
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,})\b"),
    # key=value / key: value pairs inside free text (env dumps, command lines).
    re.compile(
        r"(?i)\b([A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)[A-Z0-9_]*)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
    ),
)


def is_secret_key(key: str) -> bool:
    """True when a mapping key names a secret (``db_password``, ``Authorization``…)."""
    normalized = key.replace("-", "_")
    return bool(_SECRET_KEY.search(normalized))


def redact_text(text: str) -> str:
    """Replace secret-looking substrings of free text."""
    out = text
    for pattern in _VALUE_PATTERNS[:-1]:
        out = pattern.sub(REDACTED, out)
    return _VALUE_PATTERNS[-1].sub(lambda m: f"{m.group(1)}{m.group(3)}{REDACTED}", out)


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secrets replaced; never mutates the input."""
    if _depth > 32:
        return REDACTED
    if isinstance(value, Mapping):
        result: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key) and item not in (None, "", [], {}):
                result[key] = REDACTED
            else:
                result[key] = redact(item, _depth=_depth + 1)
        return result
    if isinstance(value, list | tuple):
        return [redact(item, _depth=_depth + 1) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
