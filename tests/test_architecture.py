"""The rooms and their one-way arrows (docs/architecture.md), checked on the source itself.

Every import counts: module level, inside functions and under `TYPE_CHECKING`, since a cycle
through a function-level import is still two rooms that each need the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "inference")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "codet5_lsp." + ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        for p in sorted((REPO / pkg).rglob("*.py"))
        if p.name != "_namespace_init.py"
    }


def _imports(path: Path, name: str) -> set[str]:
    """Every module this file imports, resolved (relative imports too)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from codet5_lsp.server import retrieval` imports a module, not a name
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles met by a depth-first walk (at least one whenever the graph has any)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_there_is_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_inference_never_imports_the_server() -> None:
    modules = _modules()
    wrong = {
        name: sorted(m for m in _imports(path, name) if m.startswith("codet5_lsp.server"))
        for name, path in modules.items()
        if name.startswith("codet5_lsp.inference")
    }
    assert not {k: v for k, v in wrong.items() if v}


def test_only_inference_imports_ctranslate2() -> None:
    modules = _modules()
    wrong = sorted(
        name
        for name, path in modules.items()
        if not name.startswith("codet5_lsp.inference")
        and any(m == "ctranslate2" or m.startswith("ctranslate2.") for m in _imports(path, name))
    )
    assert not wrong


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path) -> None:
    planted = tmp_path / "x.py"
    planted.write_text(
        "def f():\n    from codet5_lsp.server import pipeline\n    import ctranslate2.converters\n"
    )
    assert {"codet5_lsp.server.pipeline", "ctranslate2.converters"} <= _imports(
        planted, "codet5_lsp.server.x"
    )
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
