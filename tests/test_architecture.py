"""Dependencies point one way: the core (``ioc/``) imports none of ``ingest/``, ``sensors/``,
``dashboards/`` (only the command line, ``ioc/cli.py`` and ``ioc/demo.py``, knows them all),
and those three never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ioc", "ingest", "sensors", "dashboards")
ENTRY_POINTS = {ROOT / "ioc" / "cli.py", ROOT / "ioc" / "demo.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    allowed = {"ioc", package}
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path in ENTRY_POINTS:
            continue
        wrong = (_imports(path) & set(PACKAGES)) - allowed
        if wrong:
            bad.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(wrong))}")
    assert not bad, bad
