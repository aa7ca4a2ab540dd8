"""The layers import one way (docs/architecture.md), without cycles, and stay small.

Each package is imported in a fresh interpreter (every one of its modules), and the
modules it must never load are looked for in ``sys.modules``: what a layer imports at
module level, directly or through another layer, is what a user pays for and what a
change there can break.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "glimix_cli"

UI = ("typer", "rich", "click")
#: package -> modules (prefixes) it must never load, directly or indirectly
FORBIDDEN = {
    "model": (*UI, "pandas", "glimix_cli.io", "glimix_cli.kinship", "glimix_cli.pipeline",
              "glimix_cli.report", "glimix_cli.cli", "glimix_cli.testing"),
    "io": (*UI, "glimix_cli.model", "glimix_cli.kinship", "glimix_cli.pipeline",
           "glimix_cli.report", "glimix_cli.cli", "glimix_cli.testing"),
    "kinship": (*UI, "glimix_cli.pipeline", "glimix_cli.report", "glimix_cli.cli",
                "glimix_cli.testing"),
    "report": (*UI, "matplotlib", "glimix_cli.kinship", "glimix_cli.pipeline", "glimix_cli.cli",
               "glimix_cli.testing"),
    "pipeline": (*UI, "glimix_cli.report", "glimix_cli.cli", "glimix_cli.testing"),
    "testing": (*UI, "glimix_cli.pipeline", "glimix_cli.report", "glimix_cli.cli"),
}
#: the CLI's own layer may use the pipeline and the report (inside its commands) and the
#: registry/errors at module level; it never reaches past the pipeline into these:
CLI_NEVER = ("glimix_cli.io", "glimix_cli.model", "glimix_cli.kinship", "glimix_cli.testing")


def _modules(package: str) -> list[str]:
    root = PKG / package
    return sorted(f"glimix_cli.{package}." + p.relative_to(root).with_suffix("").as_posix()
                  .replace("/", ".") for p in root.rglob("*.py") if p.name != "__init__.py")


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_never_loads_what_is_above_or_beside_it(package):
    loaded = _loaded_after_import([f"glimix_cli.{package}", *_modules(package)])
    bad = sorted(m for m in loaded for f in FORBIDDEN[package]
                 if m == f or m.startswith(f + "."))
    assert not bad, f"glimix_cli.{package} loads {bad}"


def test_the_cli_module_level_is_light_and_errors_print_without_numpy():
    code = ("import sys\n"
            "from glimix_cli.cli.app import app\n"
            "from glimix_cli.cli.console import error\n"
            "error('x')\n"
            "heavy = [m for m in ('numpy', 'scipy', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "error: x" in proc.stderr


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level?) for every glimix_cli import of a source file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            names += [f"{node.module}.{a.name}" for a in node.names]
        out += [(n, id(node) in top) for n in names if n.startswith("glimix_cli")]
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("").as_posix().replace("/", ".")
    return rel.removesuffix(".__init__")


def test_no_import_cycle_at_module_level():
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {m: sorted({n for n, top in _imports(p) if top and n in files and n != m})
             for m, p in files.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_cli_goes_through_the_pipeline():
    for path in (PKG / "cli").glob("*.py"):
        for name, _ in _imports(path):
            assert not name.startswith(CLI_NEVER), f"{path.name} imports {name}"


def test_no_module_over_600_lines_and_no_function_over_120():
    long = []
    for path in sorted(PKG.rglob("*.py")):
        src = path.read_text()
        if len(src.splitlines()) > 600:
            long.append(f"{path.relative_to(PKG)}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > 120:
                    long.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name}: {size}")
    assert not long, long
