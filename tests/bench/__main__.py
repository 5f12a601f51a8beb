"""``make bench``: run every tests/bench/bench_*.py module's ``run()`` and print one table.

``python -m tests.bench [NAME ...]`` runs only the named modules (e.g. ``auth``).
Results are also written to tests/bench/results/latest.json.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.bench.common import Row
from tests.testbed import sessions

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    sessions.hold()  # its containers carry this session's label: no test session sweeps them
    wanted = set(argv)
    rows: list[Row] = []
    failures: list[str] = []
    console = Console(stderr=False, width=200)
    for mod in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if not mod.name.startswith("bench_"):
            continue
        short = mod.name.removeprefix("bench_")
        if wanted and short not in wanted:
            continue
        started = time.perf_counter()
        console.print(f"[bold]running {mod.name}[/bold]")
        try:
            module = importlib.import_module(f"tests.bench.{mod.name}")
            rows.extend(module.run())
        except Exception:
            failures.append(mod.name)
            traceback.print_exc()
        console.print(f"  done in {time.perf_counter() - started:.1f} s")
    table = Table(title="tailops benchmarks")
    for col in ("group", "figure", "value", "unit", "baseline", "ratio", "target", "ok"):
        table.add_column(col)
    for r in rows:
        ratio = r.ratio
        table.add_row(
            r.group,
            r.name + (f" ({r.note})" if r.note else ""),
            f"{r.value:.4g}",
            r.unit,
            "" if r.baseline is None else f"{r.baseline:.4g}",
            "" if ratio is None else f"{ratio:.2f}",
            r.target or "",
            "" if r.ok is None else ("yes" if r.ok else "NO"),
        )
    console.print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    if failures:
        console.print(f"[red]benchmark modules failed: {', '.join(failures)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
