"""Dependencies point one way: the core (``ioc/``) imports none of ``ingest/``, ``sensors/``,
``dashboards/`` (only the command line, ``ioc/cli.py`` and the demo, ``ioc/demo/``, know them
all), and those three never import each other. The demo is not core: nothing else imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ioc", "ingest", "sensors", "dashboards")
DEMO = ROOT / "ioc" / "demo"
ENTRY_POINTS = {ROOT / "ioc" / "cli.py", *DEMO.glob("*.py")}


def _imports(path: Path, depth: int = 1) -> set[str]:
    """The modules ``path`` imports, cut to their first ``depth`` parts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {".".join(a.name.split(".")[:depth]) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(".".join(node.module.split(".")[:depth]))
            if node.module == "ioc" and depth > 1:
                found |= {f"ioc.{a.name}" for a in node.names}
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


def test_nothing_but_the_command_line_imports_the_demo() -> None:
    """The demo (supervisor, embedded servers, mail catcher) stays out of the core: only
    ``ioc/cli.py`` (lazily, by name) and the demo itself refer to it."""
    bad = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in ENTRY_POINTS:
                continue
            if "ioc.demo" in _imports(path, depth=2):
                bad.append(str(path.relative_to(ROOT)))
    assert not bad, bad
