"""The import direction rule: api -> streaming -> moderation -> engine -> llama; api -> store, which imports
nothing of the server; bench imports nothing of the server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamserve

PACKAGE = Path(streamserve.__file__).parent

# For each package: the streamserve packages it must never import.
FORBIDDEN = {
    "llama": {"api", "streaming", "moderation", "engine", "store", "bench", "cli", "config", "models", "server"},
    "engine": {"api", "streaming", "moderation", "store", "bench", "cli", "config", "models", "server"},
    "moderation": {"api", "streaming", "store", "bench", "cli", "config", "models", "llama", "server"},
    "streaming": {"api", "store", "bench", "cli", "config", "models", "llama"},
    "store": {"api", "streaming", "moderation", "engine", "llama", "bench", "cli", "config", "models", "server"},
    "api": {"bench", "cli", "llama"},
    "bench": {"api", "streaming", "moderation", "engine", "store", "llama", "cli", "config", "models", "server"},
}
THIRD_PARTY_ONLY_IN = {"llama_cpp": {"llama"}, "llguidance": {"llama", "engine"}, "fastapi": {"api"},
                       "starlette": {"api"}, "prometheus_client": {"api"}, "regex": {"moderation"},
                       "profanity_check": {"moderation"}}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    violations = []
    for path in _modules(package):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "streamserve" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert violations == []


@pytest.mark.parametrize("library", sorted(THIRD_PARTY_ONLY_IN))
def test_third_party_stays_in_its_layer(library: str) -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = path.relative_to(PACKAGE).parts[0]
        if package in THIRD_PARTY_ONLY_IN[library]:
            continue
        if any(name.split(".")[0] == library for name in _imports(path)):
            violations.append(str(path.relative_to(PACKAGE)))
    assert violations == []


def test_every_package_declares_all() -> None:
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        tree = ast.parse(init.read_text())
        names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                 if isinstance(t, ast.Name)}
        if "__all__" not in names:
            missing.append(str(init.relative_to(PACKAGE)))
    assert missing == []


def test_all_names_exist() -> None:
    import importlib

    for init in sorted(PACKAGE.rglob("__init__.py")):
        rel = init.parent.relative_to(PACKAGE.parent)
        module = importlib.import_module(".".join(rel.parts))
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"
