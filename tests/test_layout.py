"""The house rules that keep the code findable: HTTP stays in the routers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "verifyd"
#: The only modules that may speak HTTP: the routers and the app that wires them.
HTTP_MODULES = {"app.py"}
HTTP_PACKAGES = {"api"}
WEB_FRAMEWORKS = ("fastapi", "starlette")


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_nothing_outside_the_routers_imports_the_web_framework() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    offenders = []
    for path in modules:
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in HTTP_PACKAGES or str(rel) in HTTP_MODULES:
            continue
        if imported(path) & set(WEB_FRAMEWORKS):
            offenders.append(str(rel))
    assert offenders == []
    # the check itself sees what it must: the routers do import FastAPI
    assert "fastapi" in imported(PACKAGE / "api" / "public.py")
    assert (PACKAGE / "flows" / "signup.py") in modules
