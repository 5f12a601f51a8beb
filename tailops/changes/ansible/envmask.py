"""Hide container environment values in what a run records (diffs, messages, events, artifacts).

Why: ``get_container_details`` shows env NAMES to every ``readonly`` holder and keeps the
VALUES behind ``container:admin`` (``reveal_container_env``), because env values often
hold credentials. community.docker's results carry those values in the clear: the
``docker_container`` diff (``before``/``after``), the ``container`` inspect data
(``Config.Env``), the module's ``invocation`` arguments, ``docker_container_info``
results, facts a role builds from them, and the callback's own ``stdout`` rendering of
all that. Plans and runs are readable with ``readonly``, so a plan of ``container_update``
would otherwise publish every secret of the container it replaces. (issue 13)

:class:`EnvMasker` works at the source, on each raw ansible-runner event, before the
event is parsed into a plan/run or written to the artifacts:

* every mapping key named ``env``/``Env`` (any depth) keeps its variable NAMES and gets
  :data:`ENV_MASK` as every value (a ``["NAME=value", ...]`` list or a ``{NAME: value}``
  mapping); where a ``before``/``after`` pair differs for a name, the after side says
  :data:`ENV_MASK_CHANGED`, so a reviewer still sees that it changes;
* every value it has masked in this run is then also replaced wherever else it appears
  in the event's strings (``stdout``, ``msg``, a later ``debug``) as ``NAME=value``,
  ``"NAME": "value"`` and, for values of at least :data:`MIN_BARE_LEN` characters,
  bare; :meth:`EnvMasker.mask_text` does the same for the run's ``stdout`` artifact.

What it must never do: let a masked value through a later event of the same run, change
anything but env values (statuses, task names, other diff lines stay as they are), or
raise on a strange event (it masks what it recognises and leaves the rest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["ENV_KEYS", "ENV_MASK", "ENV_MASK_CHANGED", "MIN_BARE_LEN", "EnvMasker"]

ENV_MASK = "[HIDDEN: container env value]"
ENV_MASK_CHANGED = "[HIDDEN: container env value, changed]"
ENV_KEYS = frozenset({"env", "Env"})
# Shorter values ("1", "on", "dev") are only replaced in NAME=value / "NAME": "value"
# form: replaced bare they would shred unrelated text.
MIN_BARE_LEN = 4
_MAX_DEPTH = 64


def _pairs(value: Any) -> dict[str, str] | None:
    """``{NAME: value}`` from an env list (``NAME=value``) or mapping; None if neither."""
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return {name: val for name, _, val in (item.partition("=") for item in value)}
    return None


class EnvMasker:
    """Masks container env values in one run's events; remembers them for the whole run."""

    def __init__(self) -> None:
        self._pairs: set[tuple[str, str]] = set()
        self._pattern: re.Pattern[str] | None = None
        self._repl: dict[str, str] = {}

    # -- structures -----------------------------------------------------------------
    def _masked_env(self, value: Any, changed: Collection[str] = ()) -> Any:
        pairs = _pairs(value)
        if pairs is None:
            return value
        for name, val in pairs.items():
            if val:
                self._pairs.add((name, val))
        self._pattern = None

        def mark(name: str) -> str:
            return ENV_MASK_CHANGED if name in changed else ENV_MASK

        if isinstance(value, Mapping):
            return {str(k): mark(str(k)) for k in value}
        out: list[str] = []
        for item in value:
            name, sep, _val = item.partition("=")
            out.append(f"{name}={mark(name)}" if sep else item)
        return out

    def _walk(self, value: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            changed = self._changed_names(value)
            for key, item in value.items():
                if key in ENV_KEYS:
                    out[key] = self._masked_env(item)
                elif key == "after" and changed:
                    out[key] = self._walk_after(item, changed, depth + 1)
                else:
                    out[key] = self._walk(item, depth + 1)
            return out
        if isinstance(value, list):
            return [self._walk(item, depth + 1) for item in value]
        return value

    def _walk_after(self, value: Any, changed: Collection[str], depth: int) -> Any:
        if isinstance(value, Mapping):
            return {
                k: self._masked_env(v, changed) if k in ENV_KEYS else self._walk(v, depth + 1) for k, v in value.items()
            }
        return self._walk(value, depth)

    @staticmethod
    def _changed_names(value: Mapping[Any, Any]) -> set[str]:
        before, after = value.get("before"), value.get("after")
        if not isinstance(before, Mapping) or not isinstance(after, Mapping):
            return set()
        names: set[str] = set()
        for key in ENV_KEYS:
            old, new = _pairs(before.get(key)), _pairs(after.get(key))
            if old is not None and new is not None:
                names |= {n for n in new if n in old and old[n] != new[n]}
        return names

    # -- text ---------------------------------------------------------------------------
    def _compiled(self) -> re.Pattern[str] | None:
        if self._pattern is None and self._pairs:
            repl: dict[str, str] = {}
            for _name, val in self._pairs:
                if len(val) >= MIN_BARE_LEN:
                    repl[val] = ENV_MASK
                    repl[json.dumps(val)[1:-1]] = ENV_MASK  # as it appears inside JSON text
            for name, val in self._pairs:  # the NAME=value forms win over a bare value
                repl[f"{name}={val}"] = f"{name}={ENV_MASK}"
                repl[f"{json.dumps(name)}: {json.dumps(val)}"] = f"{json.dumps(name)}: {json.dumps(ENV_MASK)}"
            self._repl = repl
            # Longest first, so "NAME=value" wins over the bare value inside it.
            self._pattern = re.compile("|".join(re.escape(f) for f in sorted(repl, key=len, reverse=True)))
        return self._pattern

    def mask_text(self, text: str) -> str:
        """``text`` with every env value seen so far in this run replaced."""
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: self._repl[m.group(0)], text)

    def _strings(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {k: self._strings(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v, depth + 1) for v in value]
        return value

    # -- events -------------------------------------------------------------------------
    def mask_event(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of one raw ansible-runner event with env values hidden (see the module doc)."""
        walked = self._walk(raw)
        assert isinstance(walked, dict)
        if not self._pairs:
            return walked
        masked = self._strings(walked)
        assert isinstance(masked, dict)
        return masked
