"""The package map in docs/architecture.md is the rule: every import inside imgsynth/ (at the
top of a module or in a function) must run the way the map allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "imgsynth"


def allowed_imports() -> dict[str, set[str] | None]:
    """{package: the packages it may import (None: any)}, read from the map's table."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = doc.split("<!-- package-map: start -->")[1].split("<!-- package-map: end -->")[0]
    allowed: dict[str, set[str] | None] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name, _, may = cells
        allowed[name.strip("`")] = None if may == "any" else set(re.findall(r"`(\w+)`", may))
    return allowed


def owner(path: Path) -> str:
    """The map's package a module belongs to (a package's cli.py belongs to `cli`)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] in ("cli", "__main__"):
        return "cli"
    return parts[0] if len(parts) > 1 else parts[0]


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(package, line) of every `imgsynth.<package>` a module imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names]
                                     if node.module == "imgsynth" else [])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "imgsynth" and len(parts) > 1 and parts[1] != "__version__":
                found.add((parts[1], node.lineno))
    return found


def test_every_package_is_on_the_map():
    allowed = allowed_imports()
    packages = {owner(p) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE}
    assert packages - {"__init__"} <= set(allowed), f"not on the map: {packages - set(allowed)}"


def test_no_import_runs_against_the_map():
    allowed = allowed_imports()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        source = owner(path)
        may = allowed[source]
        for target, line in sorted(imported_packages(path)):
            target = "cli" if target == "__main__" else target
            if may is not None and target != source and target not in may:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports imgsynth.{target} "
                             f"({source} may import: {', '.join(sorted(may)) or 'nothing'})")
    assert not wrong, "imports against the package map in docs/architecture.md:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_way_import(tmp_path):
    """The rule reads function-level imports too (a lazy import is still a dependency)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from imgsynth.run import run_recipe\n    import imgsynth.torch.data\n")
    assert imported_packages(module) == {("run", 2), ("torch", 3)}
