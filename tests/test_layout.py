"""The shape of the house: imports run one way (no cycles, the core never imports a wing) and the
tools stay thin. Every ``import`` statement counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

WINGS = ("crnn_ocr.speech", "crnn_ocr.deploy", "crnn_ocr.music")  # import the core; the core never imports them
APPS = ("crnn_ocr.infer",)  # beside tools/: may import the wings; nothing in the package imports them
MAX_TOOL_LINES = 150


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "crnn_ocr").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """crnn_ocr module -> the crnn_ocr modules it imports anywhere in its code."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {m for t in targets if t.startswith("crnn_ocr") and (m := owner(t)) not in (None, name, "crnn_ocr")}
        graph[name] = deps
    return graph


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(path[path.index(dep):] + [dep])
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_core_imports_no_wing_and_nothing_imports_an_app():
    graph = import_graph()
    in_wing = lambda m: m.startswith(WINGS)  # noqa: E731
    for module, deps in graph.items():
        if not in_wing(module) and not module.startswith(APPS):
            assert not {d for d in deps if in_wing(d)}, f"core module {module} imports a wing"
        assert not {d for d in deps if d.startswith(APPS)}, f"{module} imports an app module"


def test_wing_front_ends_are_found_by_kind():
    """The core reaches a wing's front-end kind through the registry, never by an import."""
    from crnn_ocr.frontend import WING_KINDS, frontend_class
    from crnn_ocr.speech import AudioFrontend

    assert WING_KINDS == {"audio": "crnn_ocr.speech"} and frontend_class("audio") is AudioFrontend


def test_tools_are_thin():
    for tool in sorted((ROOT / "tools").glob("*.py")):
        lines = len(tool.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_TOOL_LINES, f"{tool.name}: {lines} lines; move the logic into the package"
