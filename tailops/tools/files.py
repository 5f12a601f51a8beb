"""File tools (group ``files``, scope ``file:read``): list, stat, read, tail, search.

Thin: argument bounds here, every rule in :mod:`tailops.files.policy`, every
read in :mod:`tailops.files.ops`. ``file_operations`` keeps the seed's single
entry point; the separate tools say the same with clearer parameters. All are
read-only and blocking (they run in the bounded worker pool).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tailops.errors import InvalidInput
from tailops.files.ops import (
    BinaryMode,
    DirListing,
    FileContent,
    FileStat,
    SearchResult,
    TailResult,
    list_dir,
    read_file,
    search,
    stat_path,
    tail_file,
)
from tailops.files.policy import MAX_PATH_CHARS, FilePolicy
from tailops.models import Model
from tailops.tools.registry import ToolCall, tool

PathArg = Annotated[
    str, Field(min_length=1, max_length=MAX_PATH_CHARS, description="Absolute path under an allowed root.")
]
# Room in the output cap for the fields around the content.
_ENVELOPE = 2048


def _policy(call: ToolCall) -> FilePolicy:
    return FilePolicy.from_runtime(call.rt)


def _budget(call: ToolCall) -> int:
    return max(1024, call.rt.config.server.max_output_bytes - _ENVELOPE)


def _max_bytes(call: ToolCall) -> int:
    return call.rt.config.files.max_read_bytes


@tool(group="files", list_field="entries", title="List directory")
def list_directory(
    call: ToolCall,
    *,
    path: PathArg,
    offset: Annotated[int, Field(ge=0, le=10_000_000, description="Skip this many entries (paging).")] = 0,
    limit: Annotated[int, Field(ge=1, le=1000, description="Entries per page (1-1000).")] = 200,
    show_hidden: Annotated[bool, Field(description="Include names starting with a dot.")] = True,
) -> DirListing:
    """Entries of a directory under an allowed root: name, type, size, mtime, mode, deny rule."""
    return list_dir(_policy(call), path, offset=offset, limit=limit, show_hidden=show_hidden)


@tool(group="files", name="read_file", title="Read file")
def read_text_file(
    call: ToolCall,
    *,
    path: PathArg,
    offset: Annotated[int, Field(ge=0, description="Byte offset to start at.")] = 0,
    length: Annotated[int, Field(ge=1, le=16 * 1024 * 1024, description="Bytes to read (capped by config).")] = 32768,
    binary: Annotated[
        BinaryMode, Field(description="For binary files: refuse (default), or a short hex/base64 preview.")
    ] = "refuse",
    preview_bytes: Annotated[int, Field(ge=1, le=4096, description="Bytes in a binary preview.")] = 512,
) -> FileContent:
    """Read part of a text file under an allowed root (offset/length, encoding detected)."""
    return read_file(
        _policy(call),
        path,
        offset=offset,
        length=length,
        binary=binary,
        preview_bytes=preview_bytes,
        max_bytes=_max_bytes(call),
        output_budget=_budget(call),
    )


@tool(group="files", name="tail_file", title="Tail file")
def tail_file_lines(
    call: ToolCall,
    *,
    path: PathArg,
    lines: Annotated[int, Field(ge=1, le=10000, description="How many last lines (1-10000).")] = 100,
) -> TailResult:
    """The last N lines of a text file under an allowed root, read from the end (fast on huge logs)."""
    return tail_file(_policy(call), path, lines=lines, max_bytes=_max_bytes(call), output_budget=_budget(call))


@tool(group="files", list_field="matches", title="Search files")
def search_files(
    call: ToolCall,
    *,
    path: PathArg,
    name: Annotated[str | None, Field(max_length=255, description="File-name glob, e.g. '*.log' (no '/').")] = None,
    content: Annotated[
        str | None, Field(max_length=500, description="Text (or regex with regex=true) a line must contain.")
    ] = None,
    regex: Annotated[bool, Field(description="Treat content as a regular expression.")] = False,
    case_sensitive: Annotated[bool, Field(description="Match name and content case-sensitively.")] = False,
    max_depth: Annotated[int, Field(ge=0, le=32, description="Directory levels below path to descend.")] = 5,
    limit: Annotated[int, Field(ge=1, le=1000, description="Most matches returned.")] = 100,
    timeout_s: Annotated[float, Field(gt=0, le=60, description="Stop after this many seconds.")] = 10.0,
) -> SearchResult:
    """Find files under an allowed directory by name glob and/or content (substring/regex); skips binary."""
    cfg = call.rt.config.files
    return search(
        _policy(call),
        path,
        name=name,
        content=content,
        is_regex=regex,
        case_sensitive=case_sensitive,
        max_depth=max_depth,
        limit=limit,
        timeout_s=min(timeout_s, cfg.search_timeout.total_seconds()),
        max_files=cfg.search_max_files,
        max_file_bytes=cfg.search_max_file_bytes,
    )


class FileOperationResult(Model):
    operation: Literal["list", "stat", "read", "tail", "search"]
    listing: DirListing | None = None
    stat: FileStat | None = None
    file: FileContent | None = None
    tail: TailResult | None = None
    search: SearchResult | None = None


@tool(group="files", title="File operations")
def file_operations(
    call: ToolCall,
    *,
    operation: Annotated[
        Literal["list", "stat", "read", "tail", "search"],
        Field(description="list, stat, read, tail or search (read-only; nothing is ever written)."),
    ],
    path: PathArg,
    offset: Annotated[int, Field(ge=0, description="list: entry offset; read: byte offset.")] = 0,
    length: Annotated[int, Field(ge=1, le=16 * 1024 * 1024, description="read: bytes to read.")] = 32768,
    limit: Annotated[int, Field(ge=1, le=1000, description="list: entries per page; search: most matches.")] = 100,
    lines: Annotated[int, Field(ge=1, le=10000, description="tail: how many last lines.")] = 100,
    binary: Annotated[BinaryMode, Field(description="read: refuse, hex or base64 for binary files.")] = "refuse",
    pattern: Annotated[str | None, Field(max_length=255, description="search: file-name glob.")] = None,
    content: Annotated[str | None, Field(max_length=500, description="search: text a line must contain.")] = None,
    regex: Annotated[bool, Field(description="search: content is a regular expression.")] = False,
    max_depth: Annotated[int, Field(ge=0, le=32, description="search: directory levels to descend.")] = 5,
) -> FileOperationResult:
    """Read-only file access under the allowed roots: list a directory, stat, read, tail or search files.

    Symlinks, FIFOs, devices, sockets, deny-listed names and the server's own
    files are refused with the rule that refused them.
    """
    result = _file_operation(
        call,
        operation,
        path,
        offset=offset,
        length=length,
        limit=limit,
        lines=lines,
        binary=binary,
        pattern=pattern,
        content=content,
        regex=regex,
        max_depth=max_depth,
    )
    return _fit_output(result, _budget(call))


def _fit_output(result: FileOperationResult, budget: int) -> FileOperationResult:
    """Drop trailing list entries/matches until the whole result fits the output cap."""
    listing, found = result.listing, result.search
    while len(result.model_dump_json().encode()) > budget:
        if listing is not None and listing.entries:
            keep = listing.entries[: max(0, len(listing.entries) * 3 // 4)]
            nxt = listing.offset + len(keep)
            listing = listing.model_copy(
                update={
                    "entries": keep,
                    "next_offset": nxt,
                    "truncated": True,
                    "truncation": f"output cap reached: pass offset={nxt} for the next page",
                }
            )
            result = result.model_copy(update={"listing": listing})
        elif found is not None and found.matches:
            keep_m = found.matches[: max(0, len(found.matches) * 3 // 4)]
            found = found.model_copy(
                update={
                    "matches": keep_m,
                    "truncated": True,
                    "truncation": f"output cap reached: {len(keep_m)} match(es) shown; narrow the search",
                }
            )
            result = result.model_copy(update={"search": found})
        else:
            break
    return result


def _file_operation(
    call: ToolCall,
    operation: str,
    path: str,
    *,
    offset: int,
    length: int,
    limit: int,
    lines: int,
    binary: BinaryMode,
    pattern: str | None,
    content: str | None,
    regex: bool,
    max_depth: int,
) -> FileOperationResult:
    policy = _policy(call)
    if operation == "list":
        listing = list_dir(policy, path, offset=offset, limit=limit)
        return FileOperationResult(operation="list", listing=listing)
    if operation == "stat":
        return FileOperationResult(operation="stat", stat=stat_path(policy, path))
    if operation == "read":
        return FileOperationResult(
            operation="read",
            file=read_file(
                policy,
                path,
                offset=offset,
                length=length,
                binary=binary,
                max_bytes=_max_bytes(call),
                output_budget=_budget(call),
            ),
        )
    if operation == "tail":
        return FileOperationResult(
            operation="tail",
            tail=tail_file(policy, path, lines=lines, max_bytes=_max_bytes(call), output_budget=_budget(call)),
        )
    if operation == "search":
        cfg = call.rt.config.files
        result = search(
            policy,
            path,
            name=pattern,
            content=content,
            is_regex=regex,
            max_depth=max_depth,
            limit=limit,
            timeout_s=cfg.search_timeout.total_seconds(),
            max_files=cfg.search_max_files,
            max_file_bytes=cfg.search_max_file_bytes,
        )
        return FileOperationResult(operation="search", search=result)
    raise InvalidInput(f"unknown operation {operation!r}; use list, stat, read, tail or search.")
