"""File tools doing their job on real files, through a real server and the real MCP client."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.types import TextContent

from tailops.config import Settings
from tests.servers import http_server, mcp_http_client


@contextlib.asynccontextmanager
async def files_client(make_settings: Callable[..., Settings], root: Path, **files: Any) -> AsyncIterator[Client]:
    settings = make_settings(files={"allowed_roots": [str(root)], **files})
    with http_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("reader", "file:read")) as client:
            yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    with anyio.fail_after(30):
        result = await client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), block.text, result.structured_content


async def ok(client: Client, tool: str, args: dict[str, Any]) -> Any:
    is_error, text, data = await call(client, tool, args)
    assert not is_error, text
    return data


async def test_list_with_paging_types_and_stat(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    for i in range(25):
        (root / f"f{i:02d}.log").write_text("x" * i)
    (root / "sub").mkdir()
    (root / ".hidden").write_text("h")
    async with files_client(make_settings, root) as client:
        names: list[str] = []
        offset: int | None = 0
        pages = 0
        while offset is not None:
            page = await ok(client, "list_directory", {"path": str(root), "limit": 10, "offset": offset})
            names += [e["name"] for e in page["entries"]]
            assert page["total"] == 27
            offset = page["next_offset"]
            pages += 1
        assert pages == 3
        assert names == sorted([f"f{i:02d}.log" for i in range(25)] + ["sub", ".hidden"])
        page = await ok(client, "list_directory", {"path": str(root), "show_hidden": False, "limit": 100})
        by_name = {e["name"]: e for e in page["entries"]}
        assert ".hidden" not in by_name and by_name["sub"]["type"] == "directory" and by_name["sub"]["size"] is None
        assert by_name["f07.log"] == {**by_name["f07.log"], "type": "file", "size": 7, "denied": None}
        assert by_name["f07.log"]["mtime"].endswith("Z")
        only = await ok(client, "list_directory", {"path": str(root), "fields": ["name"], "limit": 2})
        assert only["entries"] == [{"name": ".hidden"}, {"name": "f00.log"}]
        st = await ok(client, "file_operations", {"operation": "stat", "path": str(root / "f03.log")})
        assert st["operation"] == "stat"
        assert st["stat"]["size"] == 3 and st["stat"]["type"] == "file" and st["stat"]["readable"] is True
        listing = await ok(client, "file_operations", {"operation": "list", "path": str(root), "limit": 5})
        assert len(listing["listing"]["entries"]) == 5 and listing["listing"]["next_offset"] == 5


async def test_read_windows_encodings_and_binary(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    text = "héllo wörld – ünïcode ✓\n" * 200
    (tmp_path / "utf8.txt").write_text(text, encoding="utf-8")
    latin = "Café crème brûlée à la française, déjà vu.\n" * 40
    (tmp_path / "latin.txt").write_bytes(latin.encode("latin-1"))
    cyrillic = "Ошибка: диск переполнен, запись журнала остановлена.\n" * 30
    (tmp_path / "cyrillic.txt").write_bytes(cyrillic.encode("cp1251"))
    blob = bytes(range(256)) * 4
    (tmp_path / "blob.bin").write_bytes(blob)
    async with files_client(make_settings, tmp_path) as client:
        whole = await ok(client, "read_file", {"path": str(tmp_path / "utf8.txt")})
        assert whole["content"] == text and whole["encoding"] == "utf-8" and whole["eof"]
        # Odd-sized windows split multi-byte characters; stitched together they are the file.
        parts: list[str] = []
        offset: int | None = 0
        while offset is not None:
            part = await ok(client, "read_file", {"path": str(tmp_path / "utf8.txt"), "offset": offset, "length": 777})
            assert "\ufffd" not in part["content"]
            parts.append(part["content"])
            offset = part["next_offset"]
        assert "".join(parts) == text
        lat = await ok(client, "read_file", {"path": str(tmp_path / "latin.txt")})
        assert lat["encoding"] == "cp1252" and lat["content"] == latin
        cyr = await ok(client, "read_file", {"path": str(tmp_path / "cyrillic.txt")})
        assert cyr["encoding"] == "cp1251" and cyr["content"] == cyrillic
        is_error, msg, _ = await call(client, "read_file", {"path": str(tmp_path / "blob.bin")})
        assert is_error and "binary file" in msg and "binary='hex'" in msg
        hexed = await ok(
            client, "read_file", {"path": str(tmp_path / "blob.bin"), "binary": "hex", "preview_bytes": 16}
        )
        assert hexed["binary"] and hexed["preview"] == blob[:16].hex() and hexed["content"] is None
        b64 = await ok(
            client, "file_operations", {"operation": "read", "path": str(tmp_path / "blob.bin"), "binary": "base64"}
        )
        assert base64.b64decode(b64["file"]["preview"]) == blob[:512]


async def test_read_is_capped_by_config_and_output_budget(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "big.log").write_text("0123456789abcdef\n" * 100_000)
    async with files_client(make_settings, tmp_path, max_read_bytes=4096) as client:
        part = await ok(client, "read_file", {"path": str(tmp_path / "big.log"), "length": 1_000_000})
        assert part["bytes_read"] == 4096 and part["truncated"] and part["next_offset"] == 4096
    async with files_client(make_settings, tmp_path) as client:
        part = await ok(client, "read_file", {"path": str(tmp_path / "big.log"), "length": 1_000_000})
        # The 64 KiB output cap (JSON-escaped newlines count double) limits the window, cleanly.
        assert 30_000 < part["bytes_read"] < 64 * 1024 and part["truncated"]
        assert part["next_offset"] == part["bytes_read"]


async def test_tail_lines(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    (tmp_path / "app.log").write_text("".join(f"line {i}\n" for i in range(10_000)))
    (tmp_path / "no_newline.log").write_text("a\nb\nc")
    (tmp_path / "crlf.log").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    (tmp_path / "short.log").write_text("only\n")
    (tmp_path / "empty.log").write_text("")
    async with files_client(make_settings, tmp_path) as client:
        t = await ok(client, "tail_file", {"path": str(tmp_path / "app.log"), "lines": 5})
        assert t["lines"] == [f"line {i}" for i in range(9995, 10_000)] and not t["truncated"]
        t = await ok(client, "tail_file", {"path": str(tmp_path / "no_newline.log"), "lines": 2})
        assert t["lines"] == ["b", "c"]
        t = await ok(client, "tail_file", {"path": str(tmp_path / "crlf.log"), "lines": 2})
        assert t["lines"] == ["two", "three"]
        t = await ok(client, "tail_file", {"path": str(tmp_path / "short.log"), "lines": 50})
        assert t["lines"] == ["only"]
        t = await ok(client, "tail_file", {"path": str(tmp_path / "empty.log")})
        assert t["lines"] == [] and t["line_count"] == 0
        t = await ok(client, "tail_file", {"path": str(tmp_path / "app.log"), "lines": 10_000})
        assert t["truncated"] and "output cap" in t["truncation"] and t["lines"][-1] == "line 9999"
        t = await ok(client, "file_operations", {"operation": "tail", "path": str(tmp_path / "app.log"), "lines": 1})
        assert t["tail"]["lines"] == ["line 9999"]


async def test_tail_of_a_log_after_copytruncate_returns_its_lines(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """`logrotate copytruncate` empties the file while the writer keeps its offset: the file
    then starts with a hole of NUL bytes before the new lines. tail returns those lines
    (the hole is left out and counted); a file whose returned text is binary is still refused."""
    log = tmp_path / "app.log"
    with log.open("wb") as fh:
        fh.seek(300_000)  # the old offset: a sparse hole of NULs before it
        fh.write(b"after rotate 1\nafter rotate 2\n")
    (tmp_path / "short-hole.log").write_bytes(b"\0" * 40 + b"x\n")
    (tmp_path / "binary.dat").write_bytes(b"text\n" + bytes(range(256)) * 20 + b"\nend\n")
    async with files_client(make_settings, tmp_path) as client:
        t = await ok(client, "tail_file", {"path": str(log), "lines": 10})
        assert t["lines"] == ["after rotate 1", "after rotate 2"]
        assert t["nul_bytes_skipped"] == 300_000
        t = await ok(client, "tail_file", {"path": str(tmp_path / "short-hole.log"), "lines": 5})
        assert t["lines"] == ["x"] and t["nul_bytes_skipped"] == 40
        is_error, text, _ = await call(client, "tail_file", {"path": str(tmp_path / "binary.dat"), "lines": 3})
        assert is_error and "binary" in text


async def test_search_by_name_content_and_regex(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    root = tmp_path / "var"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "one.log").write_text("alpha\nERROR disk full\nbeta\n")
    (root / "a" / "b" / "two.log").write_text("error: timeout after 30s\n")
    (root / "a" / "b" / "c" / "three.log").write_text("Error deep\n")
    (root / "a" / "b" / "notes.txt").write_text("nothing here\n")
    (root / "a" / "bin.log").write_bytes(b"ERROR\x00\x01binary")
    (root / "a" / "evil.log").write_text("a" * 3000 + "b\n")
    async with files_client(make_settings, root) as client:
        r = await ok(client, "search_files", {"path": str(root), "name": "*.log"})
        assert sorted(m["path"].rsplit("/", 1)[1] for m in r["matches"]) == [
            "bin.log",
            "evil.log",
            "one.log",
            "three.log",
            "two.log",
        ]
        r = await ok(client, "search_files", {"path": str(root), "name": "*.LOG", "max_depth": 1})
        assert sorted(m["path"].rsplit("/", 1)[1] for m in r["matches"]) == ["bin.log", "evil.log", "one.log"]
        assert r["skipped"]["max_depth"] >= 1
        r = await ok(client, "search_files", {"path": str(root), "content": "error"})
        hits = sorted((m["path"].rsplit("/", 1)[1], m["line"], m["text"]) for m in r["matches"])
        assert hits == [
            ("one.log", 2, "ERROR disk full"),
            ("three.log", 1, "Error deep"),
            ("two.log", 1, "error: timeout after 30s"),
        ]
        assert r["skipped"]["binary"] == 1 and r["stopped"] is None and r["total"] == 3
        r = await ok(client, "search_files", {"path": str(root), "content": "ERROR", "case_sensitive": True})
        assert [m["line"] for m in r["matches"]] == [2]
        r = await ok(client, "search_files", {"path": str(root), "content": r"timeout after \d+s", "regex": True})
        assert [m["text"] for m in r["matches"]] == ["error: timeout after 30s"]
        r = await ok(client, "search_files", {"path": str(root), "content": "error", "limit": 2})
        assert len(r["matches"]) == 2 and r["stopped"] == "limit" and r["truncated"]
        # A catastrophic-backtracking pattern is cut off per line instead of stalling the server.
        started = time.perf_counter()
        r = await ok(
            client, "search_files", {"path": str(root), "content": r"(a+)+$", "regex": True, "name": "evil.log"}
        )
        assert r["matches"] == [] and r["skipped"]["regex_timeout"] == 1
        assert time.perf_counter() - started < 5
        is_error, text, _ = await call(client, "search_files", {"path": str(root), "content": "(", "regex": True})
        assert is_error and "invalid regular expression" in text
        is_error, text, _ = await call(client, "search_files", {"path": str(root)})
        assert is_error and "give a name glob, a content pattern, or both" in text
        s = await ok(client, "file_operations", {"operation": "search", "path": str(root), "pattern": "two.*"})
        assert [m["path"] for m in s["search"]["matches"]] == [str(root / "a" / "b" / "two.log")]
        is_error, text, _ = await call(client, "file_operations", {"operation": "write", "path": str(root / "x")})
        assert is_error and "operation" in text


async def test_search_stops_at_its_deadline(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        (root / f"{i:04d}.log").write_text("nothing to see\n" * 2000)
    async with files_client(make_settings, root, search_max_files=50) as client:
        r = await ok(client, "search_files", {"path": str(root), "content": "nothing", "limit": 1000})
        assert r["stopped"] in ("max_files", "limit") and r["truncated"]
        assert r["files_scanned"] <= 50
    async with files_client(make_settings, root, search_timeout="1s") as client:
        started = time.perf_counter()
        is_error, text, r = await call(client, "search_files", {"path": str(root), "content": "never-there"})
        assert time.perf_counter() - started < 5
        if is_error:
            assert text.startswith("timeout: search of") and "found nothing within 1 s" in text
        else:  # the machine scanned all 300 files within a second
            assert r["stopped"] is None and r["files_scanned"] == 300
