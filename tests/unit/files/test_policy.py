"""FilePolicy rules on a real temporary tree (no server): resolution, roots, private paths, deny patterns."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tailops.config import Settings
from tailops.errors import InvalidInput, NotFound, PathRefused
from tailops.files.policy import FilePolicy


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "app.log").write_text("one\ntwo\n")
    (root / "logs" / "Server.KEY").write_text("k")
    (root / "outside.txt").write_text("x")
    return tmp_path


def _policy(make_settings: Callable[..., Settings], roots: list[Path], config_path: Path | None = None) -> FilePolicy:
    settings = make_settings(files={"allowed_roots": [str(r) for r in roots]})
    return FilePolicy.from_settings(settings, config_path)


def _rule(exc: pytest.ExceptionInfo[PathRefused]) -> str:
    return exc.value.message.split("(rule ", 1)[1].split(")", 1)[0]


def test_a_path_inside_a_root_resolves(tree: Path, make_settings: Callable[..., Settings]) -> None:
    p = _policy(make_settings, [tree / "root" / "logs"])
    res = p.resolve(str(tree / "root" / "logs" / "app.log"))
    assert res.real == tree / "root" / "logs" / "app.log"
    assert res.parts == ("app.log",)


@pytest.mark.parametrize(
    ("path", "error", "fragment"),
    [
        ("", InvalidInput, "empty"),
        ("relative/path", InvalidInput, "absolute"),
        ("/tmp/\x00x", InvalidInput, "NUL"),
        ("/" + "a" * 5000, InvalidInput, "longer than"),
    ],
)
def test_malformed_paths(
    tree: Path, make_settings: Callable[..., Settings], path: str, error: type[Exception], fragment: str
) -> None:
    p = _policy(make_settings, [tree / "root"])
    with pytest.raises(error, match=fragment):
        p.resolve(path)


def test_outside_and_dotdot_escapes_name_the_rule(tree: Path, make_settings: Callable[..., Settings]) -> None:
    p = _policy(make_settings, [tree / "root" / "logs"])
    with pytest.raises(PathRefused) as info:
        p.resolve(str(tree / "root" / "outside.txt"))
    assert _rule(info) == "outside_allowed_roots"
    with pytest.raises(PathRefused) as info:
        p.resolve(str(tree / "root" / "logs" / ".." / "outside.txt"))
    assert _rule(info) == "outside_allowed_roots"
    assert "resolves through a symlink or '..'" in info.value.message
    # A sibling whose name merely starts with the root's name is outside too.
    (tree / "root" / "logs2").mkdir()
    with pytest.raises(PathRefused):
        p.resolve(str(tree / "root" / "logs2"))


def test_deny_patterns_are_case_insensitive_and_apply_to_every_component(
    tree: Path, make_settings: Callable[..., Settings]
) -> None:
    p = _policy(make_settings, [tree / "root"])
    with pytest.raises(PathRefused) as info:
        p.resolve(str(tree / "root" / "logs" / "Server.KEY"))
    assert _rule(info) == "deny_pattern" and "'*.key'" in info.value.message
    (tree / "root" / "id_rsa.d").mkdir()
    with pytest.raises(PathRefused) as info:
        p.resolve(str(tree / "root" / "id_rsa.d" / "anything.txt"))
    assert _rule(info) == "deny_pattern"
    assert p.denied_by("SHADOW") == "shadow"
    assert p.denied_by("app.log") is None


def test_the_requested_name_is_checked_too_not_only_the_symlink_target(
    tree: Path, make_settings: Callable[..., Settings]
) -> None:
    os.symlink("app.log", tree / "root" / "logs" / "looks.pem")
    p = _policy(make_settings, [tree / "root"])
    with pytest.raises(PathRefused) as info:
        p.resolve(str(tree / "root" / "logs" / "looks.pem"))
    assert _rule(info) == "deny_pattern"


def test_server_private_paths_inside_a_root(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(files={"allowed_roots": [str(tmp_path)]})
    cfg_dir = tmp_path / "tailops"
    cfg_dir.mkdir()
    cfg = cfg_dir / "config.yaml"
    cfg.write_text("{}\n")
    (cfg_dir / "notes.txt").write_text("x")
    p = FilePolicy.from_settings(settings, cfg)
    data = settings.server.data_dir
    for private in (
        data,
        data / "tailops.db",
        data / "keys" / "token.pub",
        data / "audit" / "audit.jsonl.1",
        cfg,
        cfg_dir / "notes.txt",
    ):
        with pytest.raises(PathRefused) as info:
            p.resolve(str(private))
        assert _rule(info) == "server_private", private
    # A config file in an ordinary directory protects only itself.
    other = tmp_path / "etc"
    other.mkdir()
    (other / "cfg.yaml").write_text("{}\n")
    (other / "neighbour.txt").write_text("x")
    p2 = FilePolicy.from_settings(settings, other / "cfg.yaml")
    with pytest.raises(PathRefused):
        p2.resolve(str(other / "cfg.yaml"))
    assert p2.resolve(str(other / "neighbour.txt")).real == other / "neighbour.txt"


def test_keys_outside_the_data_dir_are_private(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    keys = tmp_path / "elsewhere"
    keys.mkdir()
    settings = make_settings(
        files={"allowed_roots": [str(tmp_path)]},
        auth={"public_key": str(keys / "signing.pub"), "private_key": str(keys / "signing.priv")},
        audit={"path": str(tmp_path / "logs" / "tailops-audit.jsonl")},
    )
    p = FilePolicy.from_settings(settings)
    for private in (keys / "signing.pub", keys / "signing.priv", tmp_path / "logs" / "tailops-audit.jsonl.3"):
        with pytest.raises(PathRefused) as info:
            p.resolve(str(private))
        assert _rule(info) == "server_private"
    (tmp_path / "logs" / "other.log").parent.mkdir(exist_ok=True)
    (tmp_path / "logs" / "other.log").write_text("x")
    assert p.resolve(str(tmp_path / "logs" / "other.log")).parts[-1] == "other.log"


def test_missing_roots_are_ignored_and_none_left_is_a_refusal(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    p = _policy(make_settings, [tmp_path / "nope"])
    assert p.roots == ()
    with pytest.raises(PathRefused, match="no allowed root exists"):
        p.resolve(str(tmp_path))


def test_open_file_of_a_missing_file_is_not_found(tree: Path, make_settings: Callable[..., Settings]) -> None:
    p = _policy(make_settings, [tree / "root"])
    with pytest.raises(NotFound), p.open_file(str(tree / "root" / "logs" / "gone.log")):
        pass


def test_open_file_gives_a_regular_file_descriptor(tree: Path, make_settings: Callable[..., Settings]) -> None:
    p = _policy(make_settings, [tree / "root"])
    with p.open_file(str(tree / "root" / "logs" / "app.log")) as f:
        assert os.pread(f.fd, 3, 0) == b"one"
        fd = f.fd
    with pytest.raises(OSError):
        os.fstat(fd)  # closed on exit
