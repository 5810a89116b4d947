"""The import direction rule: api -> pipeline -> formats -> generation -> prompting -> moderation -> engine ->
llama; api -> models (the catalog, memory and registry, reading GGUF shapes through llama); api -> store, which
imports nothing of the server; bench imports nothing of the server. No import cycle between modules, not even
one made only of type-checking imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import streamserve

PACKAGE = Path(streamserve.__file__).parent

# For each package: the streamserve packages it must never import.
FORBIDDEN = {
    "llama": {"api", "pipeline", "formats", "generation", "prompting", "moderation", "engine", "store", "bench", "cli",
              "config", "models", "server"},
    "engine": {"api", "pipeline", "formats", "generation", "prompting", "moderation", "store", "bench", "cli",
               "config", "models", "server"},
    "moderation": {"api", "pipeline", "formats", "generation", "prompting", "store", "bench", "cli", "config",
                   "models", "llama", "server"},
    "prompting": {"api", "pipeline", "formats", "generation", "store", "bench", "cli", "config", "models", "llama",
                  "server"},
    "generation": {"api", "pipeline", "formats", "store", "bench", "cli", "config", "models", "llama", "server"},
    "formats": {"api", "pipeline", "store", "bench", "cli", "config", "models", "llama", "server"},
    "pipeline": {"api", "store", "bench", "cli", "config", "models", "llama", "server"},
    "models": {"api", "pipeline", "formats", "generation", "prompting", "moderation", "store", "bench", "cli", "config",
               "server"},
    "store": {"api", "pipeline", "formats", "generation", "prompting", "moderation", "engine", "llama", "bench", "cli",
              "config", "models", "server"},
    "api": {"bench", "cli", "llama"},
    "bench": {"api", "pipeline", "formats", "generation", "prompting", "moderation", "engine", "store", "llama", "cli",
              "config", "models", "server"},
}
# The command line's modules sit above every package: none of them may import these.
COMMAND_LINE = {"cli", "cli_flags", "serve_args"}
THIRD_PARTY_ONLY_IN = {"llama_cpp": {"llama"}, "llguidance": {"llama", "engine"}, "fastapi": {"api"},
                       "starlette": {"api"}, "prometheus_client": {"api"}, "regex": {"moderation"},
                       "profanity_check": {"moderation"}, "rich": {"bench"}, "matplotlib": {"bench"},
                       "psycopg": {"store"}}


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
            if parts[0] == "streamserve" and len(parts) > 1 and parts[1] in FORBIDDEN[package] | COMMAND_LINE:
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolved(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``path``)."""
    if node.level == 0:
        return node.module or ""
    base = _module_name(path).split(".")
    base = base if path.name == "__init__.py" else base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def test_no_import_cycles_type_only_ones_included() -> None:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = _resolved(path, node)
                targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # A package's __init__ re-exports its modules: importing it is not a dependency on them.
                if target and target != name and not (modules[target].name == "__init__.py"
                                                      and name.startswith(target + ".")):
                    graph[name].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if modules[nxt].name == "__init__.py":
                continue  # packages re-export; their own modules are checked edge by edge
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
