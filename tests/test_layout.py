"""The repository's shape (issue 16), checked by static analysis of the source (ast, no imports):

* no ``sys.path`` edits in any Python file: scripts import the installed package;
* every file of ``tools/`` at most 150 lines (a tool parses arguments and calls the package);
* no import cycle between ``crnn_ocr`` modules, counting imports inside functions;
* the core never imports the wings (``crnn_ocr.speech``, ``crnn_ocr.music``, ``crnn_ocr.deploy``, ``crnn_ocr.classify``,
  ``crnn_ocr.synth``); only the application modules ``crnn_ocr.infer`` (behind ``tools/infer.py``)
  and ``crnn_ocr.self_training`` (behind ``tools/adapt.py --self-train``: recognizers and classifiers
  alike) may import them, and nothing in the package imports those;
* no function over 120 lines, except a hot loop saying so in a comment before its first statement.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "crnn_ocr"
WINGS = ("crnn_ocr.speech", "crnn_ocr.music", "crnn_ocr.deploy", "crnn_ocr.synth", "crnn_ocr.classify")  # import the core, never imported by it
APPS = ("crnn_ocr.infer", "crnn_ocr.self_training")  # beside tools/: may import the wings; nothing in the package imports them
SKIPPED_DIRS = {"runs", "data"}  # top-level output folders (hidden folders and venvs are skipped too)
MAX_TOOL_LINES = 150
MAX_FUNCTION_LINES = 120
HOT_LOOP = "hot loop"  # in a comment before a long function's first statement


# ------------------------------------------------------------------------------------ sources
def python_files(root: Path = ROOT) -> list[Path]:
    """Every .py file under ``root``, outside hidden folders (.venv, .git), virtual environments,
    caches and the top-level output folders."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and d != "__pycache__" and not d.endswith(".egg-info")
            and not (here == root and d in SKIPPED_DIRS) and not (here / d / "pyvenv.cfg").exists()
        )  # fmt: skip
        found += [here / f for f in sorted(files) if f.endswith(".py")]
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ------------------------------------------------------------------------------------ sys.path
_MUTATORS = {"insert", "append", "extend", "remove", "pop", "clear", "reverse", "sort", "__setitem__", "__delitem__",
             "__iadd__"}


def _is_sys_path(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
        and node.value.id == "sys"


def sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that change ``sys.path``: a mutating call, an assignment (also augmented, or to an
    item or slice), a ``del``, ``from sys import path``, or ``site.addsitedir``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            if (f.attr in _MUTATORS and _is_sys_path(f.value)) or (
                    f.attr == "addsitedir" and isinstance(f.value, ast.Name) and f.value.id == "site"):
                lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            if any(_is_sys_path(t) or (isinstance(t, ast.Subscript) and _is_sys_path(t.value)) for t in targets):
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            lines.append(node.lineno)
    return sorted(lines)


def test_no_sys_path_edits():
    files = python_files()
    assert any(rel(p) == "tests/test_layout.py" for p in files) and len(files) > 50
    offenders = [f"{rel(p)}:{line}" for p in files for line in sys_path_edits(parse(p))]
    assert offenders == [], "scripts import the installed package (pip install -e .), never edit sys.path"


# ------------------------------------------------------------------------------------ tools
TOOLS = sorted(rel(p) for p in (ROOT / "tools").glob("*.py"))


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_are_thin(tool):
    lines = len((ROOT / tool).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_TOOL_LINES, f"{tool}: {lines} lines (at most {MAX_TOOL_LINES}: parse arguments, call the package)"


# ------------------------------------------------------------------------------------ imports
def package_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__)."""
    out = {}
    for path in python_files(root / PACKAGE):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Every import statement that can run: at module level, in functions and methods, in
    branches; not under ``if TYPE_CHECKING:`` (its ``else`` does run)."""

    def __init__(self) -> None:
        self.found: list[ast.Import | ast.ImportFrom] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append(node)


def import_targets(module: str, is_package: bool, tree: ast.AST, modules: set[str]) -> set[str]:
    """The package modules ``module`` imports. An import counts as an edge to the module it names
    most precisely: ``from crnn_ocr.x import y`` to ``crnn_ocr.x.y`` when that is a module, else
    to ``crnn_ocr.x``; ``import crnn_ocr.x.y`` to ``crnn_ocr.x.y``. (A parent package's own
    imports are its own edges.)"""

    def known(name: str) -> str | None:  # the longest prefix of ``name`` that is a package module
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    visitor = _Imports()
    visitor.visit(tree)
    out: set[str] = set()
    for node in visitor.found:
        if isinstance(node, ast.Import):
            out |= {m for a in node.names if (m := known(a.name))}
            continue
        if node.level:  # relative: from the module's package, up level - 1 packages
            base = module.split(".") if is_package else module.split(".")[:-1]
            origin = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        for a in node.names:
            target = f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else known(origin)
            if target:
                out.add(target)
    out.discard(module)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = package_modules(root)
    names = set(modules)
    return {m: import_targets(m, p.name == "__init__.py", parse(p), names) for m, p in sorted(modules.items())}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan), each an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle():
    graph = import_graph()
    assert "crnn_ocr.music.mei" in graph["crnn_ocr.music"] and "crnn_ocr.alphabet" in graph["crnn_ocr.decoding.ctc"]
    assert [sorted(c) for c in cycles(graph)] == [], "import cycles between package modules (imports inside functions count)"


def _under(m: str, names: tuple[str, ...]) -> bool:
    return any(m == n or m.startswith(n + ".") for n in names)


def test_the_core_never_imports_a_wing():
    graph = import_graph()
    offenders = [f"{m} -> {t}" for m, targets in graph.items() if not _under(m, WINGS + APPS)
                 for t in sorted(targets) if _under(t, WINGS)]  # fmt: skip
    assert offenders == [], "wings import the core; the core imports neither"
    importers = [f"{m} -> {t}" for m, targets in graph.items() for t in sorted(targets) if _under(t, APPS)]
    assert importers == [], "the application module sits beside tools/: nothing in the package imports it"


# ------------------------------------------------------------------------------------ functions
def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) of every function and method, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _first_code_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
        and isinstance(body[0].value.value, str)
    return body[1].lineno if has_doc and len(body) > 1 else body[0].lineno


def long_functions(source: str, path: str) -> dict[str, int]:
    """``path::name`` -> lines of each function longer than ``MAX_FUNCTION_LINES``, except those
    with a comment naming them a hot loop between their ``def`` and their first statement of code."""
    comments = [(tok.start[0], tok.string.lower()) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT]
    out = {}
    for name, node in _functions(ast.parse(source)):
        lines = node.end_lineno - node.lineno + 1
        first = _first_code_line(node)
        hot = any(node.lineno <= line <= first and HOT_LOOP in text for line, text in comments)
        if lines > MAX_FUNCTION_LINES and not hot:
            out[f"{path}::{name}"] = lines
    return out


def _all_long_functions() -> dict[str, int]:
    out = {}
    for p in python_files():
        out.update(long_functions(p.read_text(encoding="utf-8"), rel(p)))
    return out


def test_functions_are_at_most_120_lines():
    offenders = _all_long_functions()
    assert offenders == {}, f"functions over {MAX_FUNCTION_LINES} lines (split them, or say why not: '# A {HOT_LOOP}...')"


# ------------------------------------------------------------------------------------ the checks themselves
def test_the_checks_find_what_they_look_for(tmp_path):
    """Each check on a tiny hand-made case, so that an empty finding means something."""
    edits = "import sys, site\nsys.path.insert(0, 'x')\nsys.path += ['y']\nsys.path[0] = 'z'\nsite.addsitedir('w')\n" \
            "def f():\n    sys.path.append('v')\nprint(sys.path[0])\n"
    assert sys_path_edits(ast.parse(edits)) == [2, 3, 4, 5, 7]

    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crnn_ocr import c\n"
                "def f():\n    from crnn_ocr.b import thing\n",
        "b.py": "import numpy\nfrom . import a\n",  # a <-> b: a cycle through an import inside a function
        "c.py": "from crnn_ocr.sub import d\n",  # d is a module: the edge goes to it, not to crnn_ocr.sub
        "sub/__init__.py": "from crnn_ocr.sub.d import X\n",
        "sub/d.py": "from ..c import Y\nX = 1\n",  # c <-> sub.d
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph == {"crnn_ocr": set(), "crnn_ocr.a": {"crnn_ocr.b"}, "crnn_ocr.b": {"crnn_ocr.a"},
                     "crnn_ocr.c": {"crnn_ocr.sub.d"}, "crnn_ocr.sub": {"crnn_ocr.sub.d"},
                     "crnn_ocr.sub.d": {"crnn_ocr.c"}}
    assert sorted(map(sorted, cycles(graph))) == [["crnn_ocr.a", "crnn_ocr.b"], ["crnn_ocr.c", "crnn_ocr.sub.d"]]

    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    long_one = f'def slow():\n    """Doc."""\n{body}'
    hot_one = f'def fast():\n    """Doc."""\n    # A hot loop: splitting it costs speed.\n{body}'
    late = f'def later():\n    """Doc."""\n{body}    # a hot loop, said too late\n'
    assert long_functions(long_one + hot_one + late, "m.py") == {"m.py::slow": 122, "m.py::later": 122}
