#!/usr/bin/env python3
"""Regenerate the generated parts of README.md (config reference, tool table).

Run: .venv/bin/python scripts/update-readme.py. tests/unit/test_docs.py fails
when README.md is out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tailops.docs import generated_sections

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    text = README.read_text()
    for name, body in generated_sections().items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)
        if not pattern.search(text):
            print(f"README.md has no <!-- {name}:start/end --> markers", file=sys.stderr)
            return 1
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
