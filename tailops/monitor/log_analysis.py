"""Find out why a container misbehaves from its log lines and its state, without an LLM.

Why it exists: ``analyze_container_logs`` has to turn megabytes of log text into a
handful of findings an agent (or a person) can act on: which errors, how often,
since when, what they most likely mean, and what to do. The steps, in one pass:

1. **Fold** multi-line stack traces (Python tracebacks, Java exceptions with their
   ``at``/``Caused by`` frames, Go panics with their goroutine dump) into one event,
   so a 40-line trace is one finding, not 40 errors.
2. **Classify** each line (or folded event) as error / warning / other from level
   markers (``ERROR``, ``[error]``, ``level=error``, ``FATAL:``, ``E0102``…).
3. **Mine templates** of error and warning lines with drain3, so "connect to
   10.0.0.7:5432 failed after 31 ms" and "... after 12 ms" count as one template,
   ranked by count with first/last seen.
4. **Match known failure signatures** (connection refused, DNS failure, permission
   denied, disk full, port in use, migration errors, out of memory, …).
5. **Tie to the container's state** (OOM kill, restart loop and exit code, crash
   exit codes, failing health check, engine error), rank the findings so the most
   likely *cause* comes first (symptoms such as a restart loop after it), and give
   each one evidence lines and a concrete recommendation.

It is pure: lines of text and a :class:`ContainerState` in, a :class:`LogAnalysis`
out. Reading logs from Docker lives in :mod:`tailops.monitor.containers`.

What it must never do: hold its whole input (it keeps counters, a bounded number of
templates and a few evidence lines), run without bounds (max lines, max bytes and a
deadline are checked as it goes; the result says when it stopped early), or return
an evidence line without passing it through secret redaction.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tailops.models import ListResult, Model
from tailops.redact import redact_text

if TYPE_CHECKING:
    from drain3 import TemplateMiner

__all__ = [
    "AnalysisLimits",
    "ContainerState",
    "Finding",
    "LogAnalysis",
    "LogAnalyzer",
    "StateSummary",
    "TemplateStat",
    "analyze_lines",
]

Severity = Literal["critical", "error", "warning", "info"]
Category = Literal["state", "signature", "stack_trace", "template"]
_SEVERITY_WEIGHT: dict[str, int] = {"critical": 3, "error": 2, "warning": 1, "info": 0}


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ContainerState:
    """What the engine says about the container (from inspect), as far as analysis needs it."""

    name: str
    status: str = "unknown"  # created, running, restarting, paused, exited, dead
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    restart_policy: str | None = None
    error: str | None = None  # State.Error, e.g. "OCI runtime create failed: ..."
    health: str | None = None  # healthy, unhealthy, starting
    health_failing_streak: int = 0
    health_log: tuple[str, ...] = ()  # last probe outputs, newest last
    started_at: str | None = None
    finished_at: str | None = None
    memory_limit: int | None = None  # bytes; None = no limit


@dataclass(frozen=True)
class AnalysisLimits:
    max_lines: int = 50_000
    max_bytes: int = 16 * 1024 * 1024
    max_seconds: float = 20.0
    max_templates: int = 10
    max_findings: int = 20
    evidence_lines: int = 3
    line_chars: int = 400
    trace_lines: int = 200  # lines kept per folded stack trace
    max_clusters: int = 1000  # drain3 clusters kept (least recently used dropped)
    near_end_lines: int = 40  # "just before it stopped": last N lines of the window


# -------------------------------------------------------------------------- outputs
class StateSummary(Model):
    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    health: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class Finding(Model):
    # Every field optional: findings can be projected with `fields`.
    kind: str | None = Field(None, description="Stable id, e.g. oom_killed, connection_refused, python_exception.")
    category: Category | None = Field(
        None, description="state (from inspect), signature (known pattern), stack_trace, template (mined)."
    )
    severity: Severity | None = None
    title: str | None = None
    count: int | None = Field(None, description="Occurrences in the analyzed lines (1 for state findings).")
    first_seen: str | None = Field(None, description="Timestamp of the first occurrence, when the log has one.")
    last_seen: str | None = Field(None, description="Timestamp of the last occurrence, when the log has one.")
    first_line: int | None = Field(None, description="1-based line number of the first occurrence in the window.")
    last_line: int | None = Field(None, description="1-based line number of the last occurrence in the window.")
    evidence: list[str] | None = Field(None, description="A few log lines or state facts (secrets redacted).")
    recommendation: str | None = None
    likely_cause: bool | None = Field(None, description="True on the finding that most likely explains the state.")


class TemplateStat(Model):
    template: str | None = None
    severity: Literal["error", "warning"] | None = None
    count: int | None = None
    first_seen: str | None = None
    last_seen: str | None = None
    example: str | None = None


class LogAnalysis(ListResult):
    container: str | None = None
    state: StateSummary | None = None
    verdict: Literal["problems_found", "warnings_only", "no_problems"]
    summary: str
    findings: list[Finding]
    templates: list[TemplateStat] = Field(description="Error/warning templates by count (drain3).")
    lines_analyzed: int
    bytes_analyzed: int
    error_lines: int = Field(description="Error events (a folded stack trace counts once).")
    warning_lines: int
    window_start: str | None = Field(None, description="Timestamp of the first analyzed line, when known.")
    window_end: str | None = Field(None, description="Timestamp of the last analyzed line, when known.")
    input_truncated: bool = Field(False, description="Older lines were left out (line/byte cap or read deadline).")
    partial: bool = Field(False, description="The analysis stopped at its deadline before the end of the input.")
    notes: list[str] = Field(default_factory=list)
    elapsed_s: float


# ------------------------------------------------------------------ line structure
# `docker logs --timestamps` prefix: RFC 3339 with nanoseconds.
_DOCKER_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}) ")
# A leading timestamp written by the application itself (ISO, nginx, postgres, syslog, bracketed).
_APP_TS = re.compile(
    r"^\[?(?P<ts>\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2})(?:[.,]\d+)?"
    r"(?:\s?(?:Z|UTC|GMT|CES?T|EES?T|[ECMP][SD]T|[+-]\d{2}:?\d{2})\b)?\]?[\s:]*"
    r"|^(?P<sys>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})\s+"
)

_ERROR = re.compile(
    r"\b(?:ERROR|ERR|FATAL|CRITICAL|CRIT|PANIC|SEVERE|EMERG|EMERGENCY|ALERT)\b"
    r"|\[(?:error|err|crit|critical|alert|emerg|fatal)\]"
    r"|\b(?:level|lvl|severity)=\"?(?:error|err|fatal|crit|critical|panic)\b"
    r"|\"(?:level|lvl|severity)\"\s*:\s*\"(?:error|err|fatal|crit|critical|panic)\""
    r"|^[EF]\d{4} \d"
    r"|\b[A-Z]\w*(?:Error|Exception)\b:"
    r"|^(?:Error|error|fatal|panic): ",
)
_WARNING = re.compile(
    r"\b(?:WARN|WARNING)\b"
    r"|\[(?:warn|warning)\]"
    r"|\b(?:level|lvl|severity)=\"?(?:warn|warning)\b"
    r"|\"(?:level|lvl|severity)\"\s*:\s*\"(?:warn|warning)\""
    r"|^W\d{4} \d"
    r"|^(?:Warning|warning): ",
)


# ------------------------------------------------------------------ signatures
@dataclass(frozen=True)
class _Signature:
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
_JSON_TS = re.compile(r"\"(?:time|ts|timestamp|@timestamp)\"\s*:\s*\"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})")
_PATH = re.compile(r"(?:\"|'|\s|^)(/[^\s\"':,()]+)")
_PORT = re.compile(r"(?:port\s+|:)(\d{2,5})\b(?![\d.])")

SIGNATURES: tuple[_Signature, ...] = (
    _Signature(
        "oom_in_logs",
        "error",
        "Out of memory reported by the application",
        "The process ran out of memory. Compare memory use with the limit (get_container_stats), "
        "then raise the container's memory limit through a reviewed change or reduce the workload's memory "
        "(heap size, worker count, caches).",
    ),
    _Signature(
        "disk_full",
        "error",
        "Disk full",
        "A write failed for lack of space. Check the host's disks (get_system_status) and the volume behind "
        "the path; free space (rotate logs, prune unused images and volumes) or grow the volume.",
        _PATH,
    ),
    _Signature(
        "port_in_use",
        "error",
        "Port already in use",
        "Another process or container already binds that port. Find it (get_active_connections with "
        "status=LISTEN, get_container_list ports), then change one side's port mapping or stop the "
        "duplicate.",
        _PORT,
    ),
    _Signature(
        "dns_failure",
        "error",
        "Host name does not resolve",
        "A dependency's host name does not resolve. Check the name's spelling in the configuration and that "
        "both containers share a user-defined network (get_docker_networks); the default bridge has no "
        "name resolution between containers.",
        _HOSTNAME,
    ),
    _Signature(
        "connection_refused",
        "error",
        "Connection refused by a dependency",
        "Nothing listens at the target. Check that the dependency container is running and healthy "
        "(get_container_list), that host and port in the configuration are right, and that the app retries "
        "until the dependency is ready instead of exiting.",
        _HOSTPORT,
    ),
    _Signature(
        "auth_failure",
        "error",
        "Authentication failed",
        "Credentials are rejected. Compare the user/password (or token) the client is configured with and what "
        "the server expects (its user table, pg_hba.conf, secrets); fix or rotate them through a reviewed "
        "change.",
        _USER,
    ),
    _Signature(
        "permission_denied",
        "error",
        "Permission denied",
        "The process may not access a file, socket or capability. Compare the container's user "
        "(inspect_container config.user) with the owner and mode of the path or volume (mounts), and whether "
        "the mount is read-only.",
        _PATH,
    ),
    _Signature(
        "migration_error",
        "error",
        "Database schema / migration problem",
        "The schema does not match what the code expects: a migration failed or was not run. Read the first "
        "migration error, fix it, and run the migrations before starting the new version.",
    ),
    _Signature(
        "tls_error",
        "error",
        "TLS / certificate error",
        "A TLS handshake or certificate check failed. Check the certificate's expiry and host name, and that "
        "the CA bundle in the image trusts the issuer.",
    ),
    _Signature(
        "missing_file",
        "error",
        "Missing file, module or executable",
        "Something the process needs is not in the container. Check CMD/ENTRYPOINT, the image build "
        "(dependencies installed?) and the mounts that should provide the path.",
        _PATH,
    ),
    _Signature(
        "too_many_open_files",
        "error",
        "Too many open files",
        "The file descriptor limit is reached. Look for a descriptor leak, or raise the nofile ulimit of the "
        "container through a reviewed change.",
    ),
    _Signature(
        "segfault",
        "critical",
        "Segmentation fault",
        "The process crashed in native code. Check for a known bug in the version in use, a mismatched "
        "native "
        "library, or corrupt input; pin or upgrade the image.",
    ),
    _Signature(
        "config_error",
        "error",
        "Configuration error",
        "The program rejected its configuration. Read the named directive/key and line, fix the file or "
        "environment, and validate it before restarting.",
    ),
    _Signature(
        "timeout",
        "warning",
        "Timeouts talking to a dependency",
        "A dependency answers slowly or not at all. Check its health and load (get_container_stats), network "
        "reachability, and whether the app's timeout is realistic.",
        _HOSTPORT,
    ),
)
_SIG_BY_KIND = {s.kind: s for s in SIGNATURES}

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


def _has_any(low: str, keys: tuple[str, ...]) -> bool:
    # A plain loop: several times faster than any(<generator>) or one big alternation regex.
    for key in keys:  # noqa: SIM110
        if key in low:
            return True
    return False


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


# Level words, lowercase: a line containing none of them cannot match _ERROR / _WARNING (except glog).
_ERROR_HINTS = ("err", "fatal", "crit", "panic", "severe", "emerg", "alert", "exception")
_GLOG = re.compile(r"^[EFW]\d{4} \d")


# ------------------------------------------------------------------ stack traces
_PY_START = re.compile(r"Traceback \(most recent call last\):")
_PY_CHAIN = re.compile(r"^(?:During handling of the above exception|The above exception was the direct cause)")
_PY_EXC = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_PY_FRAME = re.compile(r'^\s+File "([^"]+)", line (\d+), in (\S+)')

_JAVA_EXC = re.compile(
    r"^(?:Exception in thread \"[^\"]*\" )?"
    r"((?:[a-zA-Z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable))"
    r"(?::\s?(.*))?$"
)
_JAVA_CONT = re.compile(r"^\s+at |^\s*\.\.\. \d+ (?:more|common frames omitted)|^Caused by: |^\s+Suppressed: ")
_JAVA_CAUSE = re.compile(r"^Caused by: ([\w$.]+)(?::\s?(.*))?$")

_GO_START = re.compile(r"^(panic: |fatal error: )(.*)$")
_GO_CONT = re.compile(r"^$|^\s|^goroutine \d+ \[|^\[signal |^created by |^exit status \d+|^\S+\(.*\)$|^\[recovered\]")
_GO_FRAME_FILE = re.compile(r"^\t(/\S+\.go:\d+)")


@dataclass
class _Trace:
    lang: Literal["python", "java", "go"]
    lines: list[str]
    line_no: int
    ts: str | None
    dropped: int = 0
    state: str = "body"  # python: body | after_exc

    def add(self, text: str, limit: int) -> None:
        if len(self.lines) < limit:
            self.lines.append(text)
        else:
            self.dropped += 1


@dataclass
class _Group:
    """Counters for one finding or template; never holds more than a few lines."""

    count: int = 0
    first_line: int = 0
    last_line: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    samples: list[str] = field(default_factory=list)
    targets: Counter[str] = field(default_factory=Counter)
    title: str | None = None
    extra: list[str] = field(default_factory=list)

    def hit(self, line_no: int, ts: str | None, sample: str, keep: int) -> None:
        """Count one occurrence. ``sample`` is the raw line: redact with :meth:`evidence` on output."""
        if self.count == 0:
            self.first_line, self.first_ts = line_no, ts
        self.count += 1
        self.last_line = line_no
        if ts is not None:
            self.last_ts = ts
            if self.first_ts is None:
                self.first_ts = ts
        if len(self.samples) < keep:
            if sample not in self.samples:
                self.samples.append(sample)
        elif sample not in self.samples:
            # Keep the first occurrences and the most recent one.
            self.samples[-1] = sample

    def evidence(self, line_chars: int) -> list[str]:
        """The kept sample lines, clipped and with secrets redacted (done here, once, not per hit)."""
        return [_clip(redact_text(s), line_chars) for s in self.samples]


def _clip(text: str, limit: int) -> str:
    text = text.rstrip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _miner(max_clusters: int) -> TemplateMiner:
    # drain3 (and jsonpickle, cachetools) load on the first analysis, not at start-up.
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    cfg = TemplateMinerConfig()
    cfg.drain_sim_th = 0.5
    cfg.drain_depth = 4
    cfg.drain_max_clusters = max_clusters
    cfg.parametrize_numeric_tokens = True
    cfg.masking_instructions = []  # masked by _mask (one pass) before drain3 sees the text
    return TemplateMiner(config=cfg)


# Variable parts of a message, masked in one pass (drain3's own masker runs one regex per kind).
_MASK = re.compile(
    r"(?P<TS>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b)"
    r"|(?P<ID>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?P<IP>\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b)"
    r"|(?P<HEX>\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{12,}\b)"
    r"|(?P<NUM>(?<![A-Za-z])[-+]?\d+(?:\.\d+)?(?![A-Za-z]))"
)


def _mask(text: str) -> str:
    return _MASK.sub(lambda m: f"<{m.lastgroup}>", text)


# Line "shapes": digits folded, so lines that differ only in numbers share one classification.
# (bytes.translate with a 256-byte table: ~20x faster than str.translate with a mapping.)
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_SHAPE_CACHE_MAX = 20_000
_SHAPE_MAX_CHARS = 1000


class LogAnalyzer:
    """Feed lines one at a time (:meth:`feed`), then call :meth:`result` once."""

    def __init__(
        self,
        state: ContainerState | None = None,
        limits: AnalysisLimits | None = None,
        *,
        started: float | None = None,
    ) -> None:
        self.state = state
        self.limits = limits or AnalysisLimits()
        self._started = time.monotonic() if started is None else started
        self._deadline = self._started + self.limits.max_seconds
        self._miner = _miner(self.limits.max_clusters)
        self._templates: dict[int, _Group] = {}
        self._template_severity: dict[int, Literal["error", "warning"]] = {}
        self._template_text: dict[int, str] = {}
        self._covered: set[int] = set()  # templates already explained by a signature or trace finding
        self._shapes: dict[bytes, tuple[Literal["error", "warning"] | None, str | None, int | None]] = {}
        self._signatures: dict[str, _Group] = {}
        self._traces: dict[tuple[str, str, str], _Group] = {}
        self._trace: _Trace | None = None
        self._java_candidate: tuple[str, int, str | None] | None = None
        # Trace state of the other streams: a stack trace on stderr must not be cut by
        # stdout lines that the engine interleaved with it.
        self._stream = "stdout"
        self._parked: dict[str, tuple[_Trace | None, tuple[str, int, str | None] | None]] = {}
        self._last_plain: tuple[int, int] | None = None  # (line number, template id) of the last error/warning
        self.lines = 0
        self.bytes = 0
        self.error_events = 0
        self.warning_events = 0
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.stopped: str | None = None  # why feeding stopped early (limit or deadline)
        self.stop_reason: Literal["lines", "bytes", "deadline"] | None = None
        self.partial = False
        self.notes: list[str] = []

    # -- feeding -------------------------------------------------------------------
    def feed(self, raw: str, stream: str = "stdout") -> bool:
        """Take one line of ``stream``; False once a limit is reached (further lines are ignored)."""
        if self.stopped is not None:
            return False
        if stream != self._stream:
            self._parked[self._stream] = (self._trace, self._java_candidate)
            self._trace, self._java_candidate = self._parked.pop(stream, (None, None))
            self._stream = stream
        lim = self.limits
        if self.lines >= lim.max_lines:
            self.stopped = f"line cap of {lim.max_lines} reached"
            self.stop_reason = "lines"
            return False
        size = len(raw) + 1
        if self.bytes + size > lim.max_bytes:
            self.stopped = f"byte cap of {lim.max_bytes} reached"
            self.stop_reason = "bytes"
            return False
        if self.lines % 512 == 0 and time.monotonic() > self._deadline:
            self.stopped = f"deadline of {lim.max_seconds:g} s reached"
            self.stop_reason = "deadline"
            self.partial = True
            return False
        self.lines += 1
        self.bytes += size
        line = raw.rstrip("\r\n")
        ts: str | None = None
        m = _DOCKER_TS.match(line)
        if m:
            ts = m.group(1) + "Z"
            line = line[m.end() :]
        body = line
        a = _APP_TS.match(line)
        if a is not None and a.end() > 0:
            body = line[a.end() :]
            if ts is None:
                ts = a.group("ts").replace("/", "-").replace(" ", "T") if a.group("ts") else a.group("sys")
        elif ts is None and line.startswith("{"):
            j = _JSON_TS.search(line)
            if j:
                ts = j.group(1) + "Z"
        if ts is not None:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        self._step(line, body, self.lines, ts)
        return True

    def _step(self, text: str, body: str, no: int, ts: str | None) -> None:
        # 1. a Java exception line waits for its first "at" frame to be confirmed.
        if self._java_candidate is not None:
            cand_text, cand_no, cand_ts = self._java_candidate
            self._java_candidate = None
            if _JAVA_CONT.match(text):
                self._trace = _Trace("java", [cand_text, text], cand_no, cand_ts)
                return
            self._plain(cand_text, cand_no, cand_ts)
        # 2. inside a stack trace?
        tr = self._trace
        if tr is not None:
            if self._continue_trace(tr, text):
                return
            self._close_trace()
        # 3. does a stack trace start here? (Trace lines rarely carry a timestamp: use the last one seen.)
        if _PY_START.search(text):
            self._trace = _Trace("python", [body], no, ts or self.last_ts)
            return
        if _GO_START.match(body):
            self._trace = _Trace("go", [body], no, ts or self.last_ts)
            return
        if _JAVA_EXC.match(body):
            self._java_candidate = (body, no, ts or self.last_ts)
            return
        self._plain(text, no, ts, body)

    def _continue_trace(self, tr: _Trace, text: str) -> bool:
        lim = self.limits.trace_lines
        if tr.lang == "python":
            if tr.state == "after_exc":
                if not text.strip():
                    return True
                if _PY_CHAIN.match(text) or _PY_START.match(text):
                    tr.state = "body"
                    tr.add(text, lim)
                    return True
                return False
            if not text.strip() or text[0].isspace() or _PY_CHAIN.match(text) or _PY_START.match(text):
                tr.add(text, lim)
                return True
            if _PY_EXC.match(text):
                tr.add(text, lim)
                tr.state = "after_exc"
                return True
            return False
        if tr.lang == "java":
            if _JAVA_CONT.match(text):
                tr.add(text, lim)
                return True
            return False
        if _GO_CONT.match(text):
            tr.add(text, lim)
            return True
        return False

    def _close_trace(self) -> None:
        tr, self._trace = self._trace, None
        if tr is None:
            return
        self.error_events += 1
        # The log record just before the trace ("ERROR ... Exception on /x") belongs to it.
        if self._last_plain is not None and self._last_plain[0] == tr.line_no - 1:
            self._covered.add(self._last_plain[1])
        exc_type, message, location, related = _describe_trace(tr)
        headline = f"{exc_type}: {message}" if message else exc_type
        sig_kind = None
        for candidate in related:
            found = match_signature(candidate)
            if found is not None:
                sig_kind = found[0]
                break
        key = (tr.lang, exc_type, sig_kind or "")
        group = self._traces.get(key)
        if group is None:
            if len(self._traces) >= 200:
                return  # bounded: beyond 200 distinct exception kinds, later ones are only counted above
            group = self._traces[key] = _Group()
            group.title = _clip(redact_text(headline), 140)
            if location:
                group.extra.append(f"at {location}")
            if len(related) > 1 and related[-1] != related[0]:
                root = _clip(redact_text(related[-1]), 200)
                group.extra.append(f"caused by: {root}")
                group.title += f"; root cause: {_clip(root, 100)}"
        group.hit(tr.line_no, tr.ts, headline, self.limits.evidence_lines)
        if sig_kind:
            sig = _SIG_BY_KIND[sig_kind]
            if sig.target is not None:
                for candidate in related:
                    tgt = _target(sig.target, candidate)
                    if tgt:
                        group.targets[tgt] += 1
                        break
        # The folded trace also feeds the template miner (as one line).
        self._covered.add(self._mine(headline, "error", tr.line_no, tr.ts))

    def _classify(self, body: str) -> tuple[Literal["error", "warning"] | None, str | None, int | None]:
        """(severity, signature kind, template id) of one line: the expensive part, cached by shape."""
        severity: Literal["error", "warning"] | None = None
        low = body.lower()
        glog = _GLOG.match(body) is not None
        if (glog or _has_any(low, _ERROR_HINTS)) and _ERROR.search(body):
            severity = "error"
        elif (glog or "warn" in low) and _WARNING.search(body):
            severity = "warning"
        m = match_signature(body, low)
        kind = m[0] if m is not None else None
        if kind is not None and severity is None:
            severity = "error" if _SIG_BY_KIND[kind].severity in ("error", "critical") else "warning"
        cid = self._mine_cid(body) if severity is not None else None
        if cid is not None and kind is not None:
            self._covered.add(cid)
        return severity, kind, cid

    def _plain(self, text: str, no: int, ts: str | None, body: str | None = None) -> None:
        if body is None:
            body = _strip_prefix(text)
        if len(body) <= _SHAPE_MAX_CHARS:
            shape = body.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO)
            known = self._shapes.get(shape)
            if known is None:
                if len(self._shapes) >= _SHAPE_CACHE_MAX:
                    self._shapes.clear()
                known = self._shapes[shape] = self._classify(body)
        else:
            known = self._classify(body)
        severity, kind, cid = known
        if kind is not None:
            sig = _SIG_BY_KIND[kind]
            group = self._signatures.get(kind)
            if group is None:
                group = self._signatures[kind] = _Group()
            group.hit(no, ts, text, self.limits.evidence_lines)
            # Targets are sampled: every line of the first 200, then every 50th.
            if sig.target is not None and len(group.targets) < 50 and (group.count <= 200 or group.count % 50 == 0):
                tgt = _target(sig.target, body)
                if tgt:
                    group.targets[tgt] += 1
        if severity == "error":
            self.error_events += 1
        elif severity == "warning":
            self.warning_events += 1
        if severity is not None and cid is not None:
            self._count_template(cid, severity, no, ts, body)
            self._last_plain = (no, cid)

    def _mine_cid(self, body: str) -> int:
        result = self._miner.add_log_message(_mask(body[:2000]))
        cid = int(result["cluster_id"])
        self._template_text[cid] = str(result["template_mined"])
        return cid

    def _mine(self, body: str, severity: Literal["error", "warning"], no: int, ts: str | None) -> int:
        cid = self._mine_cid(body)
        self._count_template(cid, severity, no, ts, body)
        return cid

    def _count_template(
        self, cid: int, severity: Literal["error", "warning"], no: int, ts: str | None, body: str
    ) -> None:
        group = self._templates.get(cid)
        if group is None:
            if len(self._templates) >= 2 * self.limits.max_clusters:
                self._prune_templates()
            group = self._templates[cid] = _Group()
        group.hit(no, ts, body, 1)
        prev = self._template_severity.get(cid)
        if prev != "error":
            self._template_severity[cid] = severity

    def _prune_templates(self) -> None:
        keep = sorted(self._templates, key=lambda c: self._templates[c].count, reverse=True)
        for cid in keep[self.limits.max_clusters :]:
            self._templates.pop(cid, None)
            self._template_text.pop(cid, None)
            self._template_severity.pop(cid, None)
            self._covered.discard(cid)
        self._shapes.clear()  # it may name pruned templates

    # -- result ----------------------------------------------------------------------
    def finish(self) -> None:
        self._parked[self._stream] = (self._trace, self._java_candidate)
        for stream in list(self._parked):
            self._trace, self._java_candidate = self._parked.pop(stream)
            if self._java_candidate is not None:
                cand_text, cand_no, cand_ts = self._java_candidate
                self._java_candidate = None
                self._plain(cand_text, cand_no, cand_ts)
            self._close_trace()

    def result(self, *, input_truncated: bool = False, notes: Iterable[str] = ()) -> LogAnalysis:
        self.finish()
        lim = self.limits
        findings: list[tuple[tuple[float, ...], Finding]] = []
        stopped_near_end = self.state is not None and self.state.status in ("exited", "restarting", "dead")
        end_from = max(1, self.lines - lim.near_end_lines + 1)

        for finding, rank in _state_findings(self.state):
            findings.append(((rank, _SEVERITY_WEIGHT[finding.severity or "info"], 0, 1), finding))

        for kind, group in self._signatures.items():
            sig = _SIG_BY_KIND[kind]
            near_end = stopped_near_end and group.last_line >= end_from
            rank = 5.0 if sig.severity in ("error", "critical") else 2.0
            title = _title(sig.title, group)
            findings.append(
                (
                    (rank, _SEVERITY_WEIGHT[sig.severity], 1 if near_end else 0, group.count),
                    self._finding(
                        kind=kind,
                        category="signature",
                        severity=sig.severity,
                        title=title,
                        group=group,
                        recommendation=sig.recommendation,
                        near_end=near_end,
                    ),
                )
            )

        for (lang, exc_type, sig_kind), group in self._traces.items():
            trace_sig = _SIG_BY_KIND.get(sig_kind) if sig_kind else None
            near_end = stopped_near_end and group.last_line >= end_from
            kind = trace_sig.kind if trace_sig else f"{lang}_{'panic' if lang == 'go' else 'exception'}"
            label = {"python": "Python exception", "java": "Java exception", "go": "Go panic"}[lang]
            what = group.title or exc_type
            title = f"{label} {what}" if lang != "go" else f"{label}: {what}"
            if trace_sig is not None and group.targets:
                title += f" (target {group.targets.most_common(1)[0][0]})"
            title += f" ({group.count}×)" if group.count > 1 else ""
            rec = (
                f"{trace_sig.recommendation} The stack trace shows where the app gave up."
                if trace_sig
                else "An unhandled exception reached the top of the program. Read the location and "
                "message in the evidence, fix the cause (or handle it), and check whether it started with a "
                "new image or configuration."
            )
            finding = self._finding(
                kind=kind,
                category="stack_trace",
                severity="error",
                title=_clip(title, 300),
                group=group,
                recommendation=rec,
                near_end=near_end,
            )
            findings.append(((5.0, _SEVERITY_WEIGHT["error"], 1 if near_end else 0, group.count), finding))

        template_findings = 0
        for cid, group in sorted(self._templates.items(), key=lambda kv: kv[1].count, reverse=True):
            if template_findings >= 3:
                break
            if cid in self._covered or self._template_severity.get(cid) != "error":
                continue
            template_findings += 1
            near_end = stopped_near_end and group.last_line >= end_from
            text = self._template_text.get(cid, "")
            finding = self._finding(
                kind="error_template",
                category="template",
                severity="error",
                title=_clip(f"Recurring error ({group.count}×): {text}" if group.count > 1 else f"Error: {text}", 300),
                group=group,
                recommendation="No known signature matched this recurring error. Read the example lines and "
                "the lines just before the first occurrence (get_container_logs with since/until around "
                "first_seen).",
                near_end=near_end,
            )
            findings.append(((4.0, _SEVERITY_WEIGHT["error"], 1 if near_end else 0, group.count), finding))

        findings.sort(key=lambda kv: kv[0], reverse=True)
        total = len(findings)
        ranked = [f for _, f in findings[: lim.max_findings]]
        # The most likely cause: the top finding, unless it is only a symptom (rank 3 or lower).
        if findings and findings[0][0][0] >= 4.0:
            ranked[0] = ranked[0].model_copy(update={"likely_cause": True})

        templates = self._template_stats()
        has_error = any((f.severity in ("critical", "error")) for f in ranked)
        verdict: Literal["problems_found", "warnings_only", "no_problems"] = (
            "problems_found" if has_error else ("warnings_only" if ranked or self.warning_events else "no_problems")
        )
        all_notes = list(notes) + self.notes
        if self.stopped:
            all_notes.append(f"analysis stopped early: {self.stopped}; newer lines were not analyzed.")
        if self.lines == 0:
            all_notes.append("no log lines in the requested window.")
        return LogAnalysis(
            container=self.state.name if self.state else None,
            state=_state_summary(self.state),
            verdict=verdict,
            summary=_summary(self.state, ranked, self.lines, self.error_events, self.warning_events),
            findings=ranked,
            total=total,
            truncated=total > len(ranked),
            truncation=(
                f"{total - len(ranked)} lower-ranked finding(s) left out (limit {lim.max_findings})"
                if total > len(ranked)
                else None
            ),
            templates=templates,
            lines_analyzed=self.lines,
            bytes_analyzed=self.bytes,
            error_lines=self.error_events,
            warning_lines=self.warning_events,
            window_start=self.first_ts,
            window_end=self.last_ts,
            input_truncated=input_truncated or self.stopped is not None,
            partial=self.partial,
            notes=all_notes,
            elapsed_s=round(time.monotonic() - self._started, 3),
        )

    def _finding(
        self,
        *,
        kind: str,
        category: Category,
        severity: Severity,
        title: str,
        group: _Group,
        recommendation: str,
        near_end: bool,
    ) -> Finding:
        evidence = group.evidence(self.limits.line_chars) + group.extra
        if near_end:
            evidence.append(f"last seen in the final {self.limits.near_end_lines} lines before the container stopped")
        return Finding(
            kind=kind,
            category=category,
            severity=severity,
            title=title,
            count=group.count,
            first_seen=group.first_ts,
            last_seen=group.last_ts,
            first_line=group.first_line,
            last_line=group.last_line,
            evidence=evidence,
            recommendation=recommendation,
            likely_cause=False,
        )

    def _template_stats(self) -> list[TemplateStat]:
        rows = sorted(
            self._templates.items(),
            key=lambda kv: (self._template_severity.get(kv[0]) == "error", kv[1].count, kv[1].last_line),
            reverse=True,
        )
        out: list[TemplateStat] = []
        for cid, group in rows[: self.limits.max_templates]:
            out.append(
                TemplateStat(
                    template=_clip(self._template_text.get(cid, ""), self.limits.line_chars),
                    severity=self._template_severity.get(cid),
                    count=group.count,
                    first_seen=group.first_ts,
                    last_seen=group.last_ts,
                    example=next(iter(group.evidence(self.limits.line_chars)), None),
                )
            )
        return out


def analyze_lines(
    lines: Iterable[str],
    state: ContainerState | None = None,
    limits: AnalysisLimits | None = None,
    *,
    input_truncated: bool = False,
    notes: Iterable[str] = (),
) -> LogAnalysis:
    """Analyze ``lines`` (oldest first) for a container in ``state``."""
    analyzer = LogAnalyzer(state, limits)
    for line in lines:
        if not analyzer.feed(line):
            break
    return analyzer.result(input_truncated=input_truncated, notes=notes)


# ------------------------------------------------------------------ helpers
def _strip_prefix(text: str) -> str:
    m = _APP_TS.match(text)
    return text[m.end() :] if m and m.end() > 0 else text


def _target(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    if not m:
        return None
    groups = [g for g in m.groups() if g]
    if len(groups) == 2 and pattern is _HOSTPORT and not groups[0].endswith(groups[1]):
        return f"{groups[0]}:{groups[1]}"  # postgres: host "db" (172.18.0.2), port 5432
    return groups[0].strip("[]\"'") if groups else None


def _title(base: str, group: _Group) -> str:
    title = base
    if group.targets:
        top = [t for t, _ in group.targets.most_common(3)]
        title += f": {', '.join(top)}"
    if group.count > 1:
        title += f" ({group.count}×)"
    return _clip(title, 300)


def _describe_trace(tr: _Trace) -> tuple[str, str, str | None, list[str]]:
    """(exception type, message, location, exception lines oldest→newest) of a folded trace."""
    if tr.lang == "python":
        exc_lines = [ln for ln in tr.lines[1:] if ln and not ln[0].isspace() and _PY_EXC.match(ln)]
        exc_lines = [ln for ln in exc_lines if not _PY_START.match(ln)]
        frames = [m for m in (_PY_FRAME.match(ln) for ln in tr.lines) if m]
        location = f"{frames[-1].group(1)}:{frames[-1].group(2)} in {frames[-1].group(3)}" if frames else None
        if not exc_lines:
            return "Traceback", "", location, [tr.lines[0]]
        last = _PY_EXC.match(exc_lines[-1])
        assert last is not None
        return last.group(1), (last.group(2) or "").strip(), location, [exc_lines[-1], *exc_lines[:-1]]
    if tr.lang == "java":
        head = _JAVA_EXC.match(tr.lines[0])
        exc_type = head.group(1) if head else tr.lines[0][:80]
        message = (head.group(2) or "").strip() if head else ""
        causes = [ln.removeprefix("Caused by: ") for ln in tr.lines if ln.startswith("Caused by: ")]
        frame = next((ln.strip().removeprefix("at ") for ln in tr.lines[1:] if ln.lstrip().startswith("at ")), None)
        return exc_type, message, frame, [tr.lines[0], *causes]
    m = _GO_START.match(tr.lines[0])
    kind = "panic" if m is None or m.group(1) == "panic: " else "fatal error"
    message = m.group(2).strip() if m else tr.lines[0]
    location = None
    for ln in tr.lines:
        fm = _GO_FRAME_FILE.match(ln)
        if fm and "/runtime/" not in fm.group(1):
            location = fm.group(1)
            break
    # Only the panic message: the "[signal SIGSEGV" line of a nil dereference is not a native crash.
    return kind, message, location, [tr.lines[0]]


_EXIT_CODES: dict[int, tuple[str, str]] = {
    1: (
        "application error",
        "The program exited with a general error; the log lines before the exit say why.",
    ),
    2: ("misuse / bad arguments", "Check the command line and configuration the program starts with."),
    125: (
        "the container could not be created/started",
        "Read State.Error (inspect_container) for the reason.",
    ),
    126: (
        "command cannot be executed",
        "The entrypoint is not executable (permissions, wrong architecture); fix the image.",
    ),
    127: (
        "command not found",
        "CMD/ENTRYPOINT names a program missing from the image or PATH; fix the image.",
    ),
    130: ("interrupted (SIGINT)", "Someone or something interrupted the process."),
    134: (
        "aborted (SIGABRT)",
        "The process aborted itself (failed assertion, fatal runtime error); see the log.",
    ),
    137: (
        "killed (SIGKILL)",
        "Killed by SIGKILL: the kernel OOM killer (see oom_killed), `docker kill`, or a stop that timed out.",
    ),
    139: (
        "segmentation fault (SIGSEGV)",
        "A crash in native code; check the image version and native libraries.",
    ),
    143: ("terminated (SIGTERM)", "A normal stop (`docker stop`); no fault unless nobody stopped it."),
}


def _state_findings(state: ContainerState | None) -> list[tuple[Finding, float]]:
    """State-derived findings with their rank (6 = definitive cause, 3 = symptom)."""
    if state is None:
        return []
    out: list[tuple[Finding, float]] = []
    limit = f"{state.memory_limit / 1048576:.0f} MiB" if state.memory_limit else "no limit"
    if state.oom_killed:
        out.append(
            (
                Finding(
                    kind="oom_killed",
                    category="state",
                    severity="critical",
                    title=f"Killed by the kernel OOM killer (memory limit: {limit})",
                    count=1,
                    first_seen=state.finished_at,
                    last_seen=state.finished_at,
                    evidence=[
                        "State.OOMKilled = true",
                        f"exit code {state.exit_code}" if state.exit_code is not None else "exit code unknown",
                        f"memory limit {limit}",
                    ],
                    recommendation="The container used all the memory it may use and was killed. Check its "
                    "memory use over time (get_container_stats) and either raise the memory limit through a "
                    "reviewed "
                    "change (container update playbook) or reduce the workload's memory (heap size, workers, "
                    "caches); look for a leak if use grows steadily.",
                    likely_cause=False,
                ),
                6.0,
            )
        )
    if state.error:
        out.append(
            (
                Finding(
                    kind="engine_error",
                    category="state",
                    severity="critical",
                    title="The engine could not run the container",
                    count=1,
                    evidence=[_clip(redact_text(state.error), 400)],
                    recommendation="The runtime refused to start the process (bad entrypoint, missing mount "
                    "source, device or permission). Fix the reason named in the evidence, then recreate the "
                    "container through a reviewed change.",
                    likely_cause=False,
                ),
                6.0,
            )
        )
    looping = state.status == "restarting" or state.restart_count >= 3
    if looping:
        # While it runs again, the engine has reset ExitCode to 0: the last exit code is unknown then.
        code = state.exit_code if state.status != "running" else None
        if code is None:
            meaning = "running again now; the exit code of the previous run is not kept"
        elif code == 0:
            meaning = "exit code 0: the main process ends by itself"
        else:
            meaning = _EXIT_CODES.get(code, (f"exit code {code}", ""))[0]
        advice = (
            "The main process keeps exiting and the restart policy starts it again. Fix what makes it exit: "
            "the likely cause is the finding ranked first; until then each restart repeats the failure."
        )
        if code == 0:
            advice = (
                "The main process exits successfully and is restarted: it must run in the foreground "
                "(no daemonizing, no one-shot command with restart=always)."
            )
        out.append(
            (
                Finding(
                    kind="restart_loop",
                    category="state",
                    severity="critical",
                    title=f"Restart loop: restarted {state.restart_count} times, "
                    f"last exit {'unknown' if code is None else code} ({meaning})",
                    count=max(1, state.restart_count),
                    first_seen=state.started_at,
                    last_seen=state.finished_at,
                    evidence=[
                        f"status {state.status}",
                        f"restart count {state.restart_count}",
                        f"restart policy {state.restart_policy or 'none'}",
                        f"last exit code {code}",
                    ],
                    recommendation=advice,
                    likely_cause=False,
                ),
                3.0,
            )
        )
    elif state.status in ("exited", "dead") and state.exit_code not in (None, 0) and not state.oom_killed:
        code = state.exit_code
        assert code is not None
        meaning, advice = _EXIT_CODES.get(code, (f"exit code {code}", "Read the last log lines before the exit."))
        severity: Severity = "info" if code == 143 else "error"
        out.append(
            (
                Finding(
                    kind="crash_exit",
                    category="state",
                    severity=severity,
                    title=f"Exited with code {code} ({meaning})",
                    count=1,
                    first_seen=state.finished_at,
                    last_seen=state.finished_at,
                    evidence=[
                        f"status {state.status}",
                        f"exit code {code}",
                        f"finished at {state.finished_at}",
                    ],
                    recommendation=advice,
                    likely_cause=False,
                ),
                3.0 if code != 137 else 3.5,
            )
        )
    if state.health == "unhealthy":
        probes = [_clip(redact_text(p.strip()), 300) for p in state.health_log[-3:] if p.strip()]
        out.append(
            (
                Finding(
                    kind="unhealthy",
                    category="state",
                    severity="error",
                    title=f"Health check failing ({state.health_failing_streak} times in a row)",
                    count=max(1, state.health_failing_streak),
                    evidence=probes or ["the health check produced no output"],
                    recommendation="The HEALTHCHECK command fails. Read its output (evidence), check the app "
                    "listens on the port/path the check uses, and whether the check's timeout is too short.",
                    likely_cause=False,
                ),
                3.0,
            )
        )
    return out


def _state_summary(state: ContainerState | None) -> StateSummary | None:
    if state is None:
        return None
    return StateSummary(
        status=state.status,
        exit_code=state.exit_code,
        oom_killed=state.oom_killed,
        restart_count=state.restart_count,
        health=state.health,
        started_at=state.started_at,
        finished_at=state.finished_at,
    )


def _summary(state: ContainerState | None, findings: list[Finding], lines: int, errors: int, warnings: int) -> str:
    parts: list[str] = []
    if state is not None:
        desc = f"{state.name} is {state.status}"
        if state.status in ("exited", "restarting", "dead") and state.exit_code is not None:
            desc += f" (exit code {state.exit_code})"
        if state.restart_count:
            desc += f", restarted {state.restart_count} times"
        if state.health:
            desc += f", health {state.health}"
        if state.oom_killed:
            desc += ", OOM-killed"
        parts.append(desc + ".")
    parts.append(f"{lines} lines analyzed: {errors} errors, {warnings} warnings.")
    cause = next((f for f in findings if f.likely_cause), None)
    if cause is not None:
        when = f", last at {cause.last_seen}" if cause.last_seen else ""
        parts.append(f"Most likely cause: {cause.title}{when}.")
        others = [f.title for f in findings if f is not cause and f.severity in ("critical", "error")][:2]
        if others:
            parts.append("Also: " + "; ".join(t or "" for t in others) + ".")
    elif findings:
        parts.append(f"Top finding: {findings[0].title}.")
    else:
        parts.append("No known failure signature found.")
    return " ".join(parts)
