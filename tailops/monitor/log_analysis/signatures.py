"""Known failure signatures: connection refused, DNS failure, disk full, port in use, OOM, TLS, ….

Why it exists: most container failures are one of a few dozen known kinds, each
with a concrete recommendation. A line matches a signature through a cheap
substring prefilter (lowercase keywords) and then one precise pattern; the
target of the failure (host:port, path, port, user) is pulled out for the
finding's title.

What it must never do: run every pattern on every line (the keyword prefilter
comes first), or recommend a change made any other way than a reviewed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailops.monitor.log_analysis.models import Severity

__all__ = ["SIGNATURES", "SIGNATURE_BY_KIND", "Signature", "match_signature", "target_of"]


@dataclass(frozen=True)
class Signature:
    kind: str
    severity: Severity
    title: str
    recommendation: str
    # Pulls the "what" (host:port, path, port) out of a matching line for the title.
    target: re.Pattern[str] | None = None


_HOSTPORT = re.compile(
    r"(?:upstream:\s*\"?[a-z]+://|\bto\s+|\bat\s+|\bhost\s+|\baddress\s+|\bconnect\s+|\bdial tcp\s+"
    r"|\bserver\s+|\bon\s+)"
    r"\"?\[?([A-Za-z0-9_.-]+\]?:\d{2,5})\b"
    r"|\b(\d{1,3}(?:\.\d{1,3}){3}:\d{2,5})\b"
    r"|\"([A-Za-z0-9_.-]+)\"\s*\([\d.:a-f]+\),\s*port\s+(\d+)",
)
_HOSTNAME = re.compile(
    r"(?:lookup\s+|host name\s+\"|ENOTFOUND\s+|EAI_AGAIN\s+|UnknownHostException:\s*"
    r"|resolve(?: host)?\s+'?\"?"
    r"|Could not resolve host:\s*)([A-Za-z0-9_.-]+)"
)
_USER = re.compile(r"for user \"?'?([\w.@-]+)|user(?:name)?[= ]\"?'?([\w.@-]+)\"?'?\s+(?:failed|rejected)")
_PATH = re.compile(r"(?:\"|'|\s|^)(/[^\s\"':,()]+)")
_PORT = re.compile(r"(?:port\s+|:)(\d{2,5})\b(?![\d.])")

SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "oom_in_logs",
        "error",
        "Out of memory reported by the application",
        "The process ran out of memory. Compare memory use with the limit (get_container_stats), "
        "then raise the container's memory limit through a reviewed change or reduce the workload's memory "
        "(heap size, worker count, caches).",
    ),
    Signature(
        "disk_full",
        "error",
        "Disk full",
        "A write failed for lack of space. Check the host's disks (get_system_status) and the volume behind "
        "the path; free space (rotate logs, prune unused images and volumes) or grow the volume.",
        _PATH,
    ),
    Signature(
        "port_in_use",
        "error",
        "Port already in use",
        "Another process or container already binds that port. Find it (get_active_connections with "
        "status=LISTEN, get_container_list ports), then change one side's port mapping or stop the "
        "duplicate.",
        _PORT,
    ),
    Signature(
        "dns_failure",
        "error",
        "Host name does not resolve",
        "A dependency's host name does not resolve. Check the name's spelling in the configuration and that "
        "both containers share a user-defined network (get_docker_networks); the default bridge has no "
        "name resolution between containers.",
        _HOSTNAME,
    ),
    Signature(
        "connection_refused",
        "error",
        "Connection refused by a dependency",
        "Nothing listens at the target. Check that the dependency container is running and healthy "
        "(get_container_list), that host and port in the configuration are right, and that the app retries "
        "until the dependency is ready instead of exiting.",
        _HOSTPORT,
    ),
    Signature(
        "auth_failure",
        "error",
        "Authentication failed",
        "Credentials are rejected. Compare the user/password (or token) the client is configured with and what "
        "the server expects (its user table, pg_hba.conf, secrets); fix or rotate them through a reviewed "
        "change.",
        _USER,
    ),
    Signature(
        "permission_denied",
        "error",
        "Permission denied",
        "The process may not access a file, socket or capability. Compare the container's user "
        "(inspect_container config.user) with the owner and mode of the path or volume (mounts), and whether "
        "the mount is read-only.",
        _PATH,
    ),
    Signature(
        "migration_error",
        "error",
        "Database schema / migration problem",
        "The schema does not match what the code expects: a migration failed or was not run. Read the first "
        "migration error, fix it, and run the migrations before starting the new version.",
    ),
    Signature(
        "tls_error",
        "error",
        "TLS / certificate error",
        "A TLS handshake or certificate check failed. Check the certificate's expiry and host name, and that "
        "the CA bundle in the image trusts the issuer.",
    ),
    Signature(
        "missing_file",
        "error",
        "Missing file, module or executable",
        "Something the process needs is not in the container. Check CMD/ENTRYPOINT, the image build "
        "(dependencies installed?) and the mounts that should provide the path.",
        _PATH,
    ),
    Signature(
        "too_many_open_files",
        "error",
        "Too many open files",
        "The file descriptor limit is reached. Look for a descriptor leak, or raise the nofile ulimit of the "
        "container through a reviewed change.",
    ),
    Signature(
        "segfault",
        "critical",
        "Segmentation fault",
        "The process crashed in native code. Check for a known bug in the version in use, a mismatched "
        "native "
        "library, or corrupt input; pin or upgrade the image.",
    ),
    Signature(
        "config_error",
        "error",
        "Configuration error",
        "The program rejected its configuration. Read the named directive/key and line, fix the file or "
        "environment, and validate it before restarting.",
    ),
    Signature(
        "timeout",
        "warning",
        "Timeouts talking to a dependency",
        "A dependency answers slowly or not at all. Check its health and load (get_container_stats), network "
        "reachability, and whether the app's timeout is realistic.",
        _HOSTPORT,
    ),
)
SIGNATURE_BY_KIND = {s.kind: s for s in SIGNATURES}

# Per signature: lowercase keywords (a cheap substring prefilter: at least one occurs in every line the
# pattern can match) and the precise pattern, run only when a keyword is present. Most log lines contain
# none of the keywords, so they cost a few substring checks instead of a large case-insensitive regex.
_SIGNATURE_PATTERNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "oom_in_logs",
        ("memory", "enomem", "killed process"),
        r"out of memory|OutOfMemoryError|Cannot allocate memory|\bMemoryError\b|\bENOMEM\b"
        r"|runtime: out of memory|Killed process \d+|memory limit exceeded",
    ),
    (
        "disk_full",
        ("space", "enospc", "disk", "extend file"),
        r"No space left on device|\bENOSPC\b|disk (?:is )?full|Disk quota exceeded"
        r"|could not extend file|database or disk is full|not enough space on the disk",
    ),
    (
        "port_in_use",
        ("in use", "eaddrinuse", "allocated", "(98", "bindexception", "one usage"),
        r"address already in use|\bEADDRINUSE\b|port is already allocated"
        r"|bind\(\) to \S+ failed \(98|Only one usage of each socket address|BindException",
    ),
    (
        "dns_failure",
        ("name", "enotfound", "eai_again", "no such host", "unknownhost", "misbehaving", "resolve", "getaddrinfo"),
        r"Name or service not known|Temporary failure in name resolution|\bENOTFOUND\b|\bEAI_AGAIN\b"
        r"|no such host|could not translate host name|UnknownHostException|nodename nor servname"
        r"|server misbehaving|Could not resolve host|getaddrinfo failed|Name does not resolve",
    ),
    (
        "connection_refused",
        ("refused", "connectexception", "errno 111", "(111: ", "reset by peer", "could not connect to server"),
        r"connection refused|\bECONNREFUSED\b|ConnectException|errno 111\b|\(111: "
        r"|actively refused|Connection reset by peer|could not connect to server",
    ),
    (
        "auth_failure",
        ("authentication", "access denied", "credentials", "unauthorized", "wrongpass", "noauth"),
        r"password authentication failed|authentication failed|Access denied for user"
        r"|invalid credentials|401 Unauthorized|\bWRONGPASS\b|NOAUTH Authentication required",
    ),
    (
        "permission_denied",
        ("denied", "eacces", "not permitted", "eperm", "read-only", "erofs"),
        r"permission denied|\bEACCES\b|Operation not permitted|\bEPERM\b|AccessDeniedException"
        r"|read-only file system|\bEROFS\b",
    ),
    (
        "migration_error",
        ("migrat", "does not exist", "flyway", "liquibase", "alembic", "doesn't exist", "no such table"),
        r"migrations?\b[^\n]{0,80}\b(?:fail|error)|\b(?:fail|error)\w*\b[^\n]{0,80}\bmigrat"
        r"|relation \"[^\"]+\" does not exist"
        r"|column \"[^\"]+\"(?: of relation \"[^\"]+\")? does not exist"
        r"|FlywayException|Liquibase\w*Exception|alembic\.\w+|django\.db\.migrations"
        r"|pending migrations"
        r"|Table '[^']+' doesn't exist|no such table",
    ),
    (
        "tls_error",
        ("certificate", "x509", "ssl", "handshake"),
        r"certificate verify failed|certificate has expired|x509: |SSL routines|SSLHandshakeException"
        r"|handshake failure|unable to get local issuer certificate|self[- ]signed certificate",
    ),
    (
        "missing_file",
        (
            "no such file",
            "modulenotfound",
            "importerror",
            "classnotfound",
            "noclassdeffound",
            "cannot find module",
            "executable file",
            "exec format",
            "enoent",
            "command not found",
        ),
        r"No such file or directory|ModuleNotFoundError|ImportError|ClassNotFoundException"
        r"|NoClassDefFoundError|Cannot find module|executable file not found|exec format error"
        r"|\bENOENT\b|command not found",
    ),
    ("too_many_open_files", ("open files", "emfile"), r"Too many open files|\bEMFILE\b"),
    ("segfault", ("segmentation", "sigsegv", "core dumped"), r"Segmentation fault|\bSIGSEGV\b|core dumped"),
    (
        "config_error",
        ("directive", "config", "not allowed here", "missing required"),
        r"unknown directive|invalid configuration|configuration (?:file )?error|invalid config"
        r"|is not allowed here|configuration file \S+ test failed|could not parse config"
        r"|missing required (?:config|setting|environment variable)",
    ),
    (
        "timeout",
        ("timed out", "etimedout", "deadline exceeded", "timeout"),
        r"timed out|\bETIMEDOUT\b|deadline exceeded|SocketTimeoutException|i/o timeout"
        r"|upstream timed out|connection timeout",
    ),
)
_SIGNATURE_CHECKS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (kind, keys, re.compile(pattern, re.IGNORECASE)) for kind, keys, pattern in _SIGNATURE_PATTERNS
)


_KEY_KINDS: dict[str, set[str]] = {}
for _kind, _keys, _ in _SIGNATURE_PATTERNS:
    for _key in _keys:
        _KEY_KINDS.setdefault(_key, set()).add(_kind)
_ALL_KEYS = tuple(_KEY_KINDS)


def match_signature(text: str, low: str | None = None) -> tuple[str, re.Match[str]] | None:
    """The known signature in ``text`` (the leftmost match wins), or None."""
    if low is None:
        low = text.lower()
    candidates: set[str] = set()
    for key in _ALL_KEYS:
        if key in low:
            candidates |= _KEY_KINDS[key]
    if not candidates:
        return None
    best: tuple[str, re.Match[str]] | None = None
    for kind, _keys, pattern in _SIGNATURE_CHECKS:
        if kind not in candidates:
            continue
        m = pattern.search(text)
        if m is not None and (best is None or m.start() < best[1].start()):
            best = (kind, m)
    return best


def target_of(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    if not m:
        return None
    groups = [g for g in m.groups() if g]
    if len(groups) == 2 and pattern is _HOSTPORT and not groups[0].endswith(groups[1]):
        return f"{groups[0]}:{groups[1]}"  # postgres: host "db" (172.18.0.2), port 5432
    return groups[0].strip("[]\"'") if groups else None
