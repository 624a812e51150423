"""`python -m monitor.config [--write README.md]`: print the default taxonomy's table, or write it into the README
between its markers (the README's table is generated, and a test checks that it follows the code)."""

from __future__ import annotations

import sys
from pathlib import Path

from .taxonomy import readme_table, with_readme_table


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"] and len(argv) == 2:
        target = Path(argv[1])
        target.write_text(with_readme_table(target.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    if argv:
        print("usage: python -m monitor.config [--write README.md]", file=sys.stderr)
        return 2
    print(readme_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
