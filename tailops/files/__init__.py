"""Read-only file access for agents, confined to ``files.allowed_roots``.

:mod:`tailops.files.policy` decides *whether* a path may be touched and opens it
safely (every component without following symlinks, non-blocking, regular files
only); :mod:`tailops.files.ops` reads (list, stat, read, tail, search) only
through it. Nothing here writes, and nothing here may open a path any other way.
"""

from __future__ import annotations

from tailops.files.ops import (
    DirEntry,
    DirListing,
    FileContent,
    FileStat,
    SearchMatch,
    SearchResult,
    TailResult,
    list_dir,
    read_file,
    search,
    stat_path,
    tail_file,
)
from tailops.files.policy import FilePolicy

__all__ = [
    "DirEntry",
    "DirListing",
    "FileContent",
    "FilePolicy",
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
