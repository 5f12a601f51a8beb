"""The read-only file operations: list, stat, read, tail, search.

Why this module exists: it turns opened descriptors (only ever from
:class:`~tailops.files.policy.FilePolicy`) into bounded, typed results. Every
operation has a byte cap, searches also a file count and a deadline, and text
is decoded with detection (UTF-8 first, then charset-normalizer); binary data is
refused unless the caller asks for a short hex/base64 preview.

What it must never do: open a path itself, follow a symlink while walking,
descend into the server's private directories, read without a byte cap, or
return more than the caller's output budget.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import fnmatch
import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tailops.errors import InvalidInput, OperationTimeout, PathRefused
from tailops.files.policy import FilePolicy, file_kind
from tailops.models import ListResult, Model

__all__ = [
    "BinaryMode",
    "DirEntry",
    "DirListing",
    "FileContent",
    "FileStat",
    "SearchMatch",
    "SearchResult",
    "TailResult",
    "list_dir",
    "read_file",
    "search",
    "stat_path",
    "tail_file",
]

BinaryMode = Literal["refuse", "hex", "base64"]

_SNIFF_BYTES = 8192
_TAIL_BLOCK = 64 * 1024
_SEARCH_CHUNK = 1024 * 1024
_MAX_LINE_CHARS = 4096  # a matched line is cut to this before matching and showing
_SHOWN_LINE_CHARS = 300
_PREVIEW_MAX = 4096
_REGEX_TIMEOUT_S = 0.25  # per line: a pathological pattern cannot stall the search
# Single-byte Latin code pages charset-normalizer confuses with cp1252 on short Western text.
_LATIN_CODE_PAGES = frozenset(
    {
        "cp1250",
        "cp1252",
        "cp1254",
        "cp1257",
        "cp775",
        "cp850",
        "cp437",
        "latin_1",
        "mac_latin2",
        "mac_roman",
        "iso8859_2",
        "iso8859_3",
        "iso8859_4",
        "iso8859_9",
        "iso8859_10",
        "iso8859_13",
        "iso8859_14",
        "iso8859_15",
        "iso8859_16",
    }
)
_WESTERN_PUNCT = frozenset(
    "\u20ac\u2013\u2014\u2018\u2019\u201c\u201d\u201e\u2026\u00a0\u00ab\u00bb\u00b0\u00a7\u00a9\u00ae"
)
# Control characters that do not occur in text (tab, LF, CR, FF, ESC, BS allowed).
_TEXT_CONTROLS = frozenset(range(32)) - {8, 9, 10, 12, 13, 27}
_CONTROL_BYTES = bytes(sorted(_TEXT_CONTROLS))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_len(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


# -- models -----------------------------------------------------------------------------------------
class DirEntry(Model):
    name: str | None = None
    type: str | None = Field(None, description="file, directory, symlink, fifo, socket, char_device, block_device.")
    size: int | None = Field(None, description="Bytes (files), from lstat.")
    mtime: str | None = Field(None, description="Last modification, ISO 8601 UTC.")
    mode: str | None = Field(None, description="Permission bits, octal.")
    denied: str | None = Field(None, description="Rule that would refuse reading it (deny_pattern, server_private).")


class DirListing(ListResult):
    path: str
    entries: list[DirEntry]
    offset: int = Field(0, description="Index of the first entry shown.")
    next_offset: int | None = Field(None, description="Pass as offset to see the next page; null at the end.")


class FileStat(Model):
    path: str
    resolved_path: str = Field(description="The path after resolving symlinks (inside an allowed root).")
    type: str
    size: int
    mode: str
    uid: int
    gid: int
    nlink: int
    mtime: str
    ctime: str
    readable: bool = Field(description="Whether read/tail would accept it (a regular file that passes every rule).")
    refused_by: str | None = Field(None, description="If not readable: the rule that would refuse it.")


class FileContent(Model):
    path: str
    size: int = Field(description="File size in bytes.")
    offset: int = Field(description="Byte offset the content starts at.")
    bytes_read: int
    next_offset: int | None = Field(None, description="Offset to continue from; null at end of file.")
    eof: bool
    binary: bool = False
    encoding: str | None = Field(None, description="Detected text encoding.")
    content: str | None = Field(None, description="The text (null for binary files).")
    preview: str | None = Field(None, description="Hex or base64 of the first bytes of a binary file, if asked.")
    preview_format: Literal["hex", "base64"] | None = None
    truncated: bool = Field(False, description="True when the byte or output cap cut the read short.")


class TailResult(Model):
    path: str
    size: int
    lines: list[str]
    line_count: int
    encoding: str | None = None
    truncated: bool = Field(False, description="True when the byte/output cap allowed fewer lines than asked.")
    truncation: str | None = None
    nul_bytes_skipped: int = Field(
        0,
        description="NUL bytes left out at the start of lines: the hole `logrotate copytruncate` leaves "
        "when the writer goes on at its old offset.",
    )


class SearchMatch(Model):
    path: str | None = None
    type: str | None = None
    size: int | None = None
    mtime: str | None = None
    line: int | None = Field(None, description="1-based line number of a content match.")
    text: str | None = Field(None, description="The matching line (cut to 300 characters).")


class SearchResult(ListResult):
    path: str
    matches: list[SearchMatch]
    files_scanned: int
    dirs_scanned: int
    skipped: dict[str, int] = Field(default_factory=dict, description="Files/dirs skipped, by reason.")
    stopped: str | None = Field(None, description="Why the search stopped early: limit, timeout, max_files.")


# -- text decoding -------------------------------------------------------------------------------------
def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    controls = sum(1 for b in sample if b in _TEXT_CONTROLS)
    return controls / len(sample) > 0.1


def _decode(data: bytes, *, at_start: bool, at_end: bool) -> tuple[str, str, int] | None:
    """(text, encoding, bytes consumed) or None when the data is not text.

    A multi-byte character cut by the window is dropped at the end (the next
    read starts there) and skipped at the start.
    """
    if _looks_binary(data[:_SNIFF_BYTES]):
        return None
    skip = 0
    if not at_start:
        while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
            skip += 1
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = dec.decode(data[skip:], final=at_end)
        pending = len(dec.getstate()[0])
        return text, "utf-8", len(data) - pending
    except UnicodeDecodeError:
        pass
    import charset_normalizer  # on first use: start-up does not pay for it

    best = charset_normalizer.from_bytes(data).best()
    if best is None or best.encoding is None:
        return None
    enc = best.encoding
    if enc in _LATIN_CODE_PAGES and _western(data):
        # charset-normalizer often names a Baltic/Central European page for short
        # Western text; when every non-ASCII byte is a Latin-1 letter in cp1252, that wins.
        enc = "cp1252"
    return data.decode(enc, errors="replace"), enc, len(data)


def _western(data: bytes) -> bool:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return all(c.isascii() or ("\u00c0" <= c <= "\u00ff" and c.isalpha()) or c in _WESTERN_PUNCT for c in text)


def _fit(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose JSON string fits ``budget`` bytes."""
    if _json_len(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_len(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


# -- operations ------------------------------------------------------------------------------------------
def list_dir(
    policy: FilePolicy, path: str, *, offset: int = 0, limit: int = 200, show_hidden: bool = True
) -> DirListing:
    """Entries of an allowed directory, sorted by name, one page at a time."""
    with policy.open_dir(path) as d:
        entries: list[DirEntry] = []
        with os.scandir(d.fd) as it:
            raw = sorted(it, key=lambda e: e.name)
        if not show_hidden:
            raw = [e for e in raw if not e.name.startswith(".")]
        total = len(raw)
        page = raw[offset : offset + limit]
        for e in page:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                entries.append(DirEntry(name=e.name, type="unknown"))
                continue
            child = d.path / e.name
            denied: str | None = None
            if policy.is_private(child):
                denied = "server_private"
            elif policy.denied_by(e.name) is not None:
                denied = "deny_pattern"
            entries.append(
                DirEntry(
                    name=e.name,
                    type=file_kind(st.st_mode),
                    size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                    mtime=_iso(st.st_mtime),
                    mode=oct(stat.S_IMODE(st.st_mode)),
                    denied=denied,
                )
            )
    nxt = offset + limit if offset + limit < total else None
    return DirListing(
        path=str(d.path),
        entries=entries,
        offset=offset,
        next_offset=nxt,
        total=total,
        truncated=nxt is not None,
        truncation=(f"{total - offset - len(entries)} more entries: pass offset={nxt}" if nxt is not None else None),
    )


def stat_path(policy: FilePolicy, path: str) -> FileStat:
    """Metadata of any allowed path (FIFOs and devices are only stat-ed, never opened)."""
    real, st = policy.lstat(path)
    refused_by: str | None = None
    if not stat.S_ISREG(st.st_mode):
        refused_by = "not_regular_file"
    else:
        try:
            with policy.open_file(path):
                pass
        except PathRefused as exc:
            refused_by = exc.message.split("(rule ", 1)[-1].split(")", 1)[0]
    return FileStat(
        path=path,
        resolved_path=str(real),
        type=file_kind(st.st_mode),
        size=st.st_size,
        mode=oct(stat.S_IMODE(st.st_mode)),
        uid=st.st_uid,
        gid=st.st_gid,
        nlink=st.st_nlink,
        mtime=_iso(st.st_mtime),
        ctime=_iso(st.st_ctime),
        readable=refused_by is None,
        refused_by=refused_by,
    )


def read_file(
    policy: FilePolicy,
    path: str,
    *,
    offset: int = 0,
    length: int = 32 * 1024,
    binary: BinaryMode = "refuse",
    preview_bytes: int = 512,
    max_bytes: int,
    output_budget: int,
) -> FileContent:
    """Up to ``length`` bytes from ``offset`` as text; binary refused or previewed."""
    if offset < 0:
        raise InvalidInput("offset must be 0 or more.")
    want = min(length, max_bytes)
    with policy.open_file(path) as f:
        size = f.st.st_size
        data = os.pread(f.fd, want, offset) if offset < size else b""
    cut_by_cap = length > max_bytes
    decoded = _decode(data, at_start=offset == 0, at_end=offset + len(data) >= size)
    if decoded is None:
        if binary == "refuse":
            raise InvalidInput(
                f"{path} is a binary file; its content is not returned as text.",
                hint="Pass binary='hex' or binary='base64' for a short preview, or use stat.",
            )
        n = min(preview_bytes, _PREVIEW_MAX, len(data))
        chunk = data[:n]
        preview = chunk.hex() if binary == "hex" else base64.b64encode(chunk).decode()
        end = offset + n
        return FileContent(
            path=path,
            size=size,
            offset=offset,
            bytes_read=n,
            next_offset=end if end < size else None,
            eof=end >= size,
            binary=True,
            preview=preview,
            preview_format=binary,
            truncated=end < offset + len(data),
        )
    text, enc, consumed = decoded
    fitted = _fit(text, output_budget)
    if len(fitted) < len(text):
        consumed = len(fitted.encode(enc, errors="replace"))
        cut_by_cap = True
    end = offset + consumed
    return FileContent(
        path=path,
        size=size,
        offset=offset,
        bytes_read=consumed,
        next_offset=end if end < size else None,
        eof=end >= size,
        encoding=enc,
        content=fitted,
        truncated=cut_by_cap and end < size,
    )


def tail_file(policy: FilePolicy, path: str, *, lines: int = 100, max_bytes: int, output_budget: int) -> TailResult:
    """The last ``lines`` lines, read backwards from the end in blocks (cheap on huge files)."""
    with policy.open_file(path) as f:
        size = f.st.st_size
        pos = size
        chunks: list[bytes] = []
        total = 0
        newlines = 0
        while pos > 0 and total < max_bytes:
            step = min(_TAIL_BLOCK, pos, max_bytes - total)
            pos -= step
            chunk = os.pread(f.fd, step, pos)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            newlines += chunk.count(b"\n")
            # One more newline than lines wanted (the file usually ends with one).
            if newlines > lines:
                break
    data = b"".join(reversed(chunks))
    parts = data.split(b"\n") if data else []
    if data.endswith(b"\n"):
        parts.pop()
    partial_first = pos > 0  # the first piece may start mid-line
    truncated = False
    note: str | None = None
    if len(parts) > lines:
        parts = parts[-lines:]
    elif partial_first:
        parts = parts[1:]
        truncated = True
        note = f"the {max_bytes}-byte cap allowed only {len(parts)} whole line(s)"
    # A log truncated by `logrotate copytruncate` while its writer kept its offset starts with
    # a hole of NUL bytes: leave it out, and decide "binary" on the text actually returned.
    stripped = [p.lstrip(b"\0") for p in parts]
    holes = sum(len(p) - len(q) for p, q in zip(parts, stripped, strict=True))
    selected = b"\n".join(stripped)
    decoded = None if _is_binary_text(selected) else _decode(selected, at_start=True, at_end=True)
    if decoded is None:
        raise _tail_binary(path)
    text, enc, _ = decoded
    out = [line.removesuffix("\r") for line in text.split("\n")] if parts else []
    # Keep the newest lines that fit the output budget.
    used = 2
    kept: list[str] = []
    for line in reversed(out):
        cost = _json_len(line) + 1
        if used + cost > output_budget:
            truncated = True
            note = f"output cap reached: {len(kept)} of {len(out)} line(s) shown; ask for fewer lines"
            break
        used += cost
        kept.append(line)
    kept.reverse()
    return TailResult(
        path=path,
        size=size,
        lines=kept,
        line_count=len(kept),
        encoding=enc,
        truncated=truncated,
        truncation=note,
        nul_bytes_skipped=holes,
    )


def _is_binary_text(data: bytes) -> bool:
    """Binary by the whole of ``data`` (what tail returns): any NUL, or >10 % control bytes.
    ``bytes.translate`` counts in C, so a 1 MiB tail costs about a millisecond."""
    if not data:
        return False
    if b"\0" in data:
        return True
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    return controls / len(data) > 0.1


def _tail_binary(path: str) -> InvalidInput:
    return InvalidInput(
        f"{path} is a binary file; tail returns text only.", hint="Use stat, or read with binary='hex'."
    )


class _Budget:
    def __init__(self, limit: int, deadline: float, max_files: int) -> None:
        self.limit = limit
        self.deadline = deadline
        self.max_files = max_files
        self.stopped: str | None = None

    def check(self, matches: int, files: int) -> bool:
        if matches >= self.limit:
            self.stopped = "limit"
        elif files >= self.max_files:
            self.stopped = "max_files"
        elif time.monotonic() > self.deadline:
            self.stopped = "timeout"
        return self.stopped is None


def _compile(content: str | None, is_regex: bool, case_sensitive: bool) -> Any:
    if content is None:
        return None
    if not content:
        raise InvalidInput("content must not be empty; omit it for a name-only search.")
    if len(content) > 500:
        raise InvalidInput("content pattern is longer than 500 characters.")
    import regex  # type: ignore[import-untyped,unused-ignore]  # first search only

    flags = 0 if case_sensitive else regex.IGNORECASE
    source = content if is_regex else regex.escape(content)
    try:
        return regex.compile(source, flags | regex.V0)
    except regex.error as exc:
        raise InvalidInput(f"invalid regular expression: {exc.msg}.") from exc


def _lines(fd: int, max_bytes: int, budget: _Budget) -> Iterator[tuple[int, str]]:
    """(line number, text) of a text file, up to ``max_bytes``."""
    carry = b""
    pos = 0
    number = 0
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    while pos < max_bytes:
        chunk = os.pread(fd, min(_SEARCH_CHUNK, max_bytes - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        pieces = (carry + chunk).split(b"\n")
        carry = pieces.pop()
        if len(carry) > _MAX_LINE_CHARS * 4:
            carry = carry[: _MAX_LINE_CHARS * 4]
        for piece in pieces:
            number += 1
            yield number, dec.decode(piece[: _MAX_LINE_CHARS * 4], final=True)[:_MAX_LINE_CHARS]
        if time.monotonic() > budget.deadline:
            return
    if carry:
        yield number + 1, dec.decode(carry, final=True)[:_MAX_LINE_CHARS]


def search(
    policy: FilePolicy,
    path: str,
    *,
    name: str | None = None,
    content: str | None = None,
    is_regex: bool = False,
    case_sensitive: bool = False,
    max_depth: int = 5,
    limit: int = 100,
    timeout_s: float = 10.0,
    max_files: int = 20000,
    max_file_bytes: int = 16 * 1024 * 1024,
    per_file: int = 20,
) -> SearchResult:
    """Files under ``path`` whose name matches ``name`` (glob) and/or whose lines contain ``content``.

    Never follows symlinks, never leaves the starting filesystem, skips binary
    files, denied names and the server's private directories.
    """
    if name is None and content is None:
        raise InvalidInput("give a name glob, a content pattern, or both.")
    if name is not None and (not name or len(name) > 255 or "/" in name):
        raise InvalidInput("name must be a file-name glob (no '/'), 1-255 characters, e.g. '*.log'.")
    pattern = _compile(content, is_regex, case_sensitive)
    name_glob = name if case_sensitive or name is None else name.lower()
    # One match past the limit tells "there is more" from "exactly limit".
    budget = _Budget(limit + 1, time.monotonic() + timeout_s, max_files)
    matches: list[SearchMatch] = []
    skipped: dict[str, int] = {}
    files = 0
    dirs = 0

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    with policy.open_dir(path) as top:
        start_dev = top.st.st_dev
        stack: list[tuple[int, Path, int]] = [(os.dup(top.fd), top.path, 0)]
        try:
            while stack and budget.check(len(matches), files):
                dfd, dpath, depth = stack.pop()
                try:
                    dirs += 1
                    with os.scandir(dfd) as it:
                        entries = sorted(it, key=lambda e: e.name)
                    subdirs: list[tuple[int, Path, int]] = []
                    for e in entries:
                        if not budget.check(len(matches), files):
                            break
                        child = dpath / e.name
                        if policy.is_private(child):
                            skip("server_private")
                            continue
                        if policy.denied_by(e.name) is not None:
                            skip("deny_pattern")
                            continue
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            skip("unreadable")
                            continue
                        if stat.S_ISDIR(st.st_mode):
                            if depth >= max_depth:
                                skip("max_depth")
                            elif st.st_dev != start_dev:
                                skip("other_filesystem")
                            else:
                                try:
                                    sfd = os.open(
                                        e.name,
                                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                                        dir_fd=dfd,
                                    )
                                except OSError:
                                    skip("unreadable")
                                    continue
                                try:
                                    policy.check_dir_identity(os.fstat(sfd), str(child))
                                except PathRefused:
                                    os.close(sfd)
                                    skip("server_private")
                                    continue
                                subdirs.append((sfd, child, depth + 1))
                            if (
                                name_glob is not None
                                and pattern is None
                                and _name_ok(e.name, name_glob, case_sensitive)
                            ):
                                matches.append(SearchMatch(path=str(child), type="directory", mtime=_iso(st.st_mtime)))
                            continue
                        if name_glob is not None and not _name_ok(e.name, name_glob, case_sensitive):
                            continue
                        if pattern is None:
                            files += 1
                            matches.append(
                                SearchMatch(
                                    path=str(child),
                                    type=file_kind(st.st_mode),
                                    size=st.st_size if stat.S_ISREG(st.st_mode) else None,
                                    mtime=_iso(st.st_mtime),
                                )
                            )
                            continue
                        if not stat.S_ISREG(st.st_mode):
                            skip("not_regular_file")
                            continue
                        files += 1
                        _search_file(
                            policy,
                            dfd,
                            e.name,
                            child,
                            st,
                            pattern=pattern,
                            max_file_bytes=max_file_bytes,
                            per_file=per_file,
                            budget=budget,
                            matches=matches,
                            skip=skip,
                        )
                    # Depth-first, in name order.
                    stack.extend(reversed(subdirs))
                finally:
                    os.close(dfd)
        finally:
            for fd, _, _ in stack:
                os.close(fd)
    if len(matches) > limit:
        budget.stopped = budget.stopped or "limit"
    if budget.stopped == "timeout" and not matches:
        raise OperationTimeout(
            f"search of {path} found nothing within {timeout_s:g} s ({files} file(s) scanned).",
            hint="Narrow it: a deeper start path, a name glob, or a smaller max_depth.",
        )
    return SearchResult(
        path=str(top.path),
        matches=matches[:limit],
        files_scanned=files,
        dirs_scanned=dirs,
        skipped=skipped,
        stopped=budget.stopped,
        total=None if budget.stopped else len(matches),
        truncated=budget.stopped is not None,
        truncation=(
            f"search stopped early ({budget.stopped}); narrow it to see everything" if budget.stopped else None
        ),
    )


def _name_ok(entry: str, glob: str, case_sensitive: bool) -> bool:
    return fnmatch.fnmatchcase(entry if case_sensitive else entry.lower(), glob)


def _search_file(
    policy: FilePolicy,
    dfd: int,
    name: str,
    child: Path,
    st: os.stat_result,
    *,
    pattern: Any,
    max_file_bytes: int,
    per_file: int,
    budget: _Budget,
    matches: list[SearchMatch],
    skip: Any,
) -> None:
    try:
        fd = policy.open_at(dfd, name, str(child))
    except (PathRefused, InvalidInput):
        skip("refused")
        return
    with contextlib.ExitStack() as stack:
        stack.callback(os.close, fd)
        try:
            head = os.pread(fd, _SNIFF_BYTES, 0)
        except OSError:
            skip("unreadable")
            return
        if _looks_binary(head):
            skip("binary")
            return
        if st.st_size > max_file_bytes:
            skip("partly_scanned_large_file")
        found = 0
        for number, line in _lines(fd, max_file_bytes, budget):
            try:
                hit = pattern.search(line, timeout=_REGEX_TIMEOUT_S)
            except TimeoutError:
                skip("regex_timeout")
                return
            if hit is None:
                continue
            matches.append(
                SearchMatch(
                    path=str(child),
                    type="file",
                    size=st.st_size,
                    mtime=_iso(st.st_mtime),
                    line=number,
                    text=line[:_SHOWN_LINE_CHARS],
                )
            )
            found += 1
            if found >= per_file or len(matches) >= budget.limit:
                return
