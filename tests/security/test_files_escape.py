"""File tools cannot be turned against the host: every escape is refused, by rule, without hanging.

All calls go through a real tailops HTTP server and the real MCP client with a
``file:read`` token. The allowed roots deliberately include the *parent* of
the server's data dir (and /dev), so the "server's own paths" rule and the
file-type rule are what refuse, not the roots.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from tailops.config import Settings
from tailops.errors import PathRefused
from tailops.files.policy import FilePolicy
from tests.servers import RunningServer, http_server, mcp_http_client

SECRET_LINE = "root:x:0:0:"  # /etc/passwd content that must never appear in an answer


@dataclass
class Env:
    client: Client
    server: RunningServer
    base: Path
    pub: Path
    data: Path
    config_path: Path


def _build_tree(base: Path, data: Path) -> Path:
    pub = base / "pub"
    pub.mkdir()
    (pub / "app.log").write_text("line one\nline two\n")
    (pub / "sub").mkdir()
    (pub / "sub" / "deep.log").write_text("deep\n")
    os.symlink("/etc/passwd", pub / "link_file_abs")
    os.symlink(os.path.relpath("/etc/passwd", pub), pub / "link_file_rel")
    os.symlink("/etc", pub / "link_dir_abs")
    os.symlink(os.path.relpath("/etc", pub), pub / "link_dir_rel")
    os.symlink(data / "tailops.db", pub / "link_to_db")
    os.symlink(os.path.relpath(data / "keys", pub), pub / "link_to_keys")
    os.symlink("/dev/zero", pub / "zero")
    os.symlink("app.log", pub / "inside_link.log")
    os.mkfifo(pub / "fifo")
    os.link(data / "tailops.db", pub / "hard_db")
    (pub / "shared.txt").write_text("shared\n")
    os.link(pub / "shared.txt", pub / "shared_again.txt")
    return pub


@contextlib.asynccontextmanager
async def file_env(tmp_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Env]:
    settings = make_settings(files={"allowed_roots": [str(tmp_path), "/dev"]})
    data = settings.server.data_dir
    cfg_dir = tmp_path / "tailops"
    cfg_dir.mkdir()
    config_path = cfg_dir / "config.yaml"
    config_path.write_text("server: {}\n")
    with http_server(settings) as srv:
        srv.runtime.config_path = config_path
        pub = _build_tree(tmp_path, data)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(pub / "sock"))
        try:
            token = srv.mint("reader", "file:read")
            async with mcp_http_client(srv.url, token) as client:
                yield Env(client, srv, tmp_path, pub, data, config_path)
        finally:
            sock.close()


async def call(env: Env, tool: str, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any] | None]:
    with anyio.fail_after(15):  # a FIFO or device that blocks would fail here instead of hanging
        result = await env.client.call_tool(tool, args)
    block = result.content[0]
    assert isinstance(block, TextContent)
    return bool(result.is_error), block.text, result.structured_content


async def refused(env: Env, tool: str, args: dict[str, Any], rule: str) -> str:
    is_error, text, _ = await call(env, tool, args)
    assert is_error, (tool, args, text[:200])
    assert text.startswith("path_refused: file access refused"), text
    assert f"(rule {rule})" in text, text
    assert SECRET_LINE not in text
    return text


async def test_symlink_escapes_file_and_directory_relative_and_absolute(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    async with file_env(tmp_path, make_settings) as env:
        p = env.pub
        for path in (
            p / "link_file_abs",
            p / "link_file_rel",
            p / "link_dir_abs" / "passwd",
            p / "link_dir_rel" / "passwd",
            # Through ".." after the link: the kernel resolves link_dir_abs first (/etc/..).
            p / "link_dir_abs" / ".." / "etc" / "passwd",
            # Lexically this is pub/app.log (inside, exists); really it is /app.log.
            p / "link_dir_abs" / ".." / "app.log",
        ):
            for tool, args in (
                ("read_file", {"path": str(path)}),
                ("tail_file", {"path": str(path), "lines": 5}),
                ("file_operations", {"operation": "read", "path": str(path)}),
                ("file_operations", {"operation": "stat", "path": str(path)}),
            ):
                text = await refused(env, tool, args, "outside_allowed_roots")
                assert "line one" not in text
        await refused(env, "list_directory", {"path": str(p / "link_dir_abs")}, "outside_allowed_roots")
        await refused(env, "search_files", {"path": str(p / "link_dir_rel"), "name": "*"}, "outside_allowed_roots")
        # A symlink that stays inside the roots is fine.
        ok_error, _, data = await call(env, "read_file", {"path": str(p / "inside_link.log")})
        assert not ok_error and data is not None and data["content"] == "line one\nline two\n"


async def test_the_servers_own_files_are_refused_even_inside_an_allowed_root(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    async with file_env(tmp_path, make_settings) as env:
        s = env.server.settings
        assert s.private_key_path.exists() and s.public_key_path.exists() and s.db_path.exists()
        for path in (
            s.private_key_path,
            s.public_key_path,
            s.db_path,
            s.audit_path,
            s.server.data_dir / "nothing-here-yet",
            env.config_path,
            env.config_path.parent / "other.yaml",
            env.pub / "link_to_db",
            env.pub / "link_to_keys" / "token.pub",
        ):
            await refused(env, "read_file", {"path": str(path)}, "server_private")
        await refused(env, "list_directory", {"path": str(s.server.data_dir)}, "server_private")
        await refused(env, "search_files", {"path": str(s.keys_dir), "name": "*"}, "server_private")
        # The parent listing shows the data dir, flagged, and a search from the parent never enters it.
        is_error, _, listing = await call(env, "list_directory", {"path": str(env.base)})
        assert not is_error and listing is not None
        flagged = {e["name"]: e["denied"] for e in listing["entries"]}
        assert flagged["data"] == "server_private" and flagged["tailops"] == "server_private"
        is_error, _, found = await call(
            env, "search_files", {"path": str(env.base), "content": "PRIVATE KEY", "max_depth": 6}
        )
        assert not is_error and found is not None
        assert found["matches"] == []
        assert found["skipped"].get("server_private", 0) >= 2  # data/ and tailops/
        is_error, _, names = await call(env, "search_files", {"path": str(env.base), "name": "token.*"})
        assert not is_error and names is not None and names["matches"] == []


async def test_hard_links_to_secrets_and_multi_link_files(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    async with file_env(tmp_path, make_settings) as env:
        text = await refused(env, "read_file", {"path": str(env.pub / "hard_db")}, "server_private")
        assert "hard link" in text
        await refused(env, "tail_file", {"path": str(env.pub / "hard_db")}, "server_private")
        text = await refused(env, "read_file", {"path": str(env.pub / "shared.txt")}, "hard_link")
        assert "files.allow_hard_links" in text
        is_error, _, _stat = await call(env, "file_operations", {"operation": "stat", "path": str(env.pub / "hard_db")})
        # stat of the link itself is refused too: it is the server's file by identity.
        assert is_error
        is_error, _, found = await call(env, "search_files", {"path": str(env.pub), "content": "shared"})
        assert not is_error and found is not None and found["matches"] == []


async def test_fifo_socket_and_devices_are_refused_without_blocking(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    async with file_env(tmp_path, make_settings) as env:
        cases = [
            (env.pub / "fifo", "fifo"),
            (env.pub / "sock", "socket"),
            (Path("/dev/zero"), "char device"),
            (Path("/dev/null"), "char device"),
            (env.pub / "zero", "char device"),  # symlink into the /dev root
        ]
        for path, kind in cases:
            for tool, args in (
                ("read_file", {"path": str(path)}),
                ("tail_file", {"path": str(path)}),
                ("file_operations", {"operation": "read", "path": str(path)}),
            ):
                text = await refused(env, tool, args, "not_regular_file")
                assert f"is a {kind}" in text
        # stat describes them without opening them.
        is_error, _, stat = await call(env, "file_operations", {"operation": "stat", "path": str(env.pub / "fifo")})
        assert not is_error and stat is not None
        assert stat["stat"]["type"] == "fifo" and stat["stat"]["readable"] is False
        assert stat["stat"]["refused_by"] == "not_regular_file"
        # A search walks past the FIFO and socket (never opens them).
        is_error, _, found = await call(env, "search_files", {"path": str(env.pub), "content": "line"})
        assert not is_error and found is not None
        assert [m["path"] for m in found["matches"]] == [str(env.pub / "app.log")] * 2
        assert found["skipped"]["not_regular_file"] >= 2


async def test_deny_patterns_refuse_secrets_by_name(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    async with file_env(tmp_path, make_settings) as env:
        (env.pub / "server.pem").write_text("-----BEGIN CERTIFICATE-----\n")
        (env.pub / "shadow").write_text("root:!:1::::::\n")
        os.symlink("server.pem", env.pub / "innocent.txt")
        for name in ("server.pem", "shadow", "innocent.txt"):
            text = await refused(env, "read_file", {"path": str(env.pub / name)}, "deny_pattern")
            assert "BEGIN" not in text and "root:!" not in text


async def test_huge_file_is_capped_and_quick(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    async with file_env(tmp_path, make_settings) as env:
        huge = env.pub / "huge.log"
        size = 2 * 1024**3
        text_tail = b"".join(b"tail line %04d\n" % i for i in range(273))
        with open(huge, "wb") as fh:  # sparse: ~2 GiB of zeros, then text lines
            fh.truncate(size - len(text_tail))
            fh.seek(size - len(text_tail))
            fh.write(text_tail)
        started = anyio.current_time()
        is_error, _, tail = await call(env, "tail_file", {"path": str(huge), "lines": 10})
        assert not is_error and tail is not None
        assert tail["lines"] == [f"tail line {i:04d}" for i in range(263, 273)]
        # A read of the zero-filled start is binary: refused as text.
        is_error, text, _ = await call(env, "read_file", {"path": str(huge), "length": 16 * 1024 * 1024})
        assert is_error and "binary file" in text
        # Reading near the end returns text, capped by the output budget.
        is_error, _, part = await call(env, "read_file", {"path": str(huge), "offset": size - len(text_tail)})
        assert not is_error and part is not None and part["content"].startswith("tail line 0000")
        # The content search reads at most search_max_file_bytes of it, and says so.
        is_error, _, found = await call(env, "search_files", {"path": str(env.pub), "content": "tail line"})
        assert not is_error and found is not None
        assert found["matches"] == [] and found["skipped"].get("binary", 0) == 1
        assert anyio.current_time() - started < 20


def test_a_component_swapped_for_a_symlink_after_the_check_is_refused(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "f.log").write_text("fine\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.log").write_text("SECRET\n")
    policy = FilePolicy.from_settings(make_settings(files={"allowed_roots": [str(root)]}))
    real_resolve = policy.resolve

    def resolve_then_swap(path: str) -> Any:
        res = real_resolve(path)
        os.rename(root / "dir", root / "dir.old")
        os.symlink(outside, root / "dir")
        return res

    monkeypatch.setattr(policy, "resolve", resolve_then_swap)
    with pytest.raises(PathRefused) as info, policy.open_file(str(root / "dir" / "f.log")):
        pass
    assert "(rule symlink_race)" in info.value.message
    assert "SECRET" not in info.value.message


def test_a_final_component_swapped_for_a_fifo_is_refused(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.log").write_text("fine\n")
    policy = FilePolicy.from_settings(make_settings(files={"allowed_roots": [str(root)]}))
    real_resolve = policy.resolve

    def resolve_then_swap(path: str) -> Any:
        res = real_resolve(path)
        os.unlink(root / "f.log")
        os.mkfifo(root / "f.log")
        return res

    monkeypatch.setattr(policy, "resolve", resolve_then_swap)
    with pytest.raises(PathRefused) as info, policy.open_file(str(root / "f.log")):
        pass
    assert "(rule not_regular_file)" in info.value.message


async def test_file_tools_need_the_file_read_scope(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(files={"allowed_roots": [str(tmp_path)]})
    (tmp_path / "a.log").write_text("x\n")
    with http_server(settings) as srv:
        async with mcp_http_client(srv.url, srv.mint("viewer", "readonly")) as client:
            result = await client.call_tool("read_file", {"path": str(tmp_path / "a.log")})
            block = result.content[0]
            assert isinstance(block, TextContent)
            assert result.is_error and "needs scope 'file:read'" in block.text
