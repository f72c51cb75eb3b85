"""The package's shape as docs/architecture.md states it: no import cycles among docl_core's modules
(module-level imports; a function's local import is how a module defers a heavy dependency), and
every module listed in the architecture's module table."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "docl_core"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The docl_core modules `name` imports at module level (a package's `from . import sub` names sub only)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    deps: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
            deps.update(subs)
            if target in mods and len(subs) < len(node.names):
                deps.add(target)
    return deps - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path of module names, or [] (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str]:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return []

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_docl_core_has_no_import_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert len(graph) > 30 and graph["docl_core.trainer"]  # the walk saw the package and its imports
    assert _cycle(graph) == [], " → ".join(_cycle(graph))


def test_architecture_lists_every_module():
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("## Modules"):]
    table = table[:table.index("\n## ", 1)]
    missing = [p.name for p in PKG.glob("*.py")
               if p.stem not in ("__init__", "__main__") and f"`docl_core/{p.name}`" not in table]
    missing += [p.name + "/" for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                and f"`docl_core/{p.name}/`" not in table]
    assert missing == [], f"docs/architecture.md's module table does not list: {', '.join(missing)}"
