"""The package's import graph: no cycles, integrations on top of the core, the core free of model classes.

Edges are the explicit imports of every module (module level and inside functions), read from the source with
``ast``; a package's implicit import of its parent is not an edge.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {
    "mmrope_hf": ROOT / "mmrope_hf",
    "mmrope_hf.patches": ROOT / "patches",
    "mmrope_hf.configs": ROOT / "configs",
}
# The core: everything but the integrations, the family adapters, the public test helpers and the entry points.
NOT_CORE = ("mmrope_hf.integrations", "mmrope_hf.patches", "mmrope_hf.testing", "mmrope_hf.collate")
ENTRY_POINTS = {"mmrope_hf", "mmrope_hf.__main__"}


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> set[str]:
    """The modules that ``module`` imports (internal ones resolved to the submodule when one is named)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return found


GRAPH = {module: {m for m in imports(module) if m in MODULES and m != module} for module in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def is_core(module: str) -> bool:
    return module not in ENTRY_POINTS and not module.startswith(NOT_CORE)


def test_the_graph_sees_the_package():
    # a walker that found nothing would pass every check below
    assert {"mmrope_hf.positions.registry", "mmrope_hf.patching.api", "mmrope_hf.patches.llava"} <= set(MODULES)
    assert "mmrope_hf.positions.mrope" in GRAPH["mmrope_hf.positions.registry"]
    assert "mmrope_hf.patches" in GRAPH["mmrope_hf.patching.families"]


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_cycle_finder_finds_a_planted_cycle():
    planted = {name: set(edges) for name, edges in GRAPH.items()}
    planted["mmrope_hf.positions.design"].add("mmrope_hf.positions.registry")  # the old side-effect registration
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if is_core(m)))
def test_core_depends_on_no_integration_and_no_model_class(module):
    upward = {m for m in GRAPH[module] if m.startswith(("mmrope_hf.integrations", "mmrope_hf.testing"))}
    assert not upward, f"{module} (core) imports the integration layer: {sorted(upward)}"
    external = {m for m in imports(module) if m.startswith("transformers")}
    assert external <= {"transformers"}, f"{module} (core) imports transformers internals: {sorted(external)}"
    if module != "mmrope_hf.compat":
        assert not external, f"{module} (core) imports transformers; only mmrope_hf.compat reads its version"


def test_architecture_page_matches_the_tree():
    """Every file or folder that docs/architecture.md names exists, and every package module is named there."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = {p.rstrip(",.") for p in re.findall(r"((?:mmrope_hf|patches|configs|tests)/[\w/.{},*<>-]*)", page)}
    missing = []
    for path in named:
        head, _, rest = path.partition("{")
        options = rest.split("}")[0].split(",") if rest else [""]
        for option in options:
            candidate = (head + option + (rest.split("}", 1)[1] if rest else "")).rstrip("/.")
            if "<" not in candidate and "*" not in candidate and not (ROOT / candidate).exists():
                missing.append(candidate)
    assert not missing, f"docs/architecture.md names paths that do not exist: {sorted(missing)}"
    for module, path in MODULES.items():
        if path.name != "__init__.py" and module != "mmrope_hf.__main__":
            assert path.name in page, f"{path.relative_to(ROOT)} is not on docs/architecture.md"
