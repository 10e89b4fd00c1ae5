"""The report package keeps its rooms: imports at module top, no private name across modules, no import
cycle, no HTML built in f-strings, templates and style shipped as package data, the CLI as before."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from mcal_utils.report import pages

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mcal_utils" / "report"
MODULES = {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(PACKAGE.glob("*.py"))}
# an optional dependency that may be absent may be imported inside a function; none is, today
LOCAL_IMPORTS_ALLOWED: set[tuple[str, str]] = set()


def _imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_imports_sit_at_module_top():
    local = []
    for name, tree in MODULES.items():
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in _imports(fn):  # type: ignore[arg-type]
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                local += [(name, m) for m in modules if (name, m) not in LOCAL_IMPORTS_ALLOWED]
    assert not local, f"function-local imports: {local}"


def test_no_private_name_is_imported_across_modules():
    private = [
        (name, node.module, alias.name)
        for name, tree in MODULES.items()
        for node in _imports(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and alias.name != "__future__"
    ]
    assert not private, f"private names imported: {private}"


def test_the_modules_import_each_other_without_cycles():
    graph = {
        name: {
            node.module.rsplit(".", 1)[1]
            for node in _imports(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mcal_utils.report.")
        }
        for name, tree in MODULES.items()
    }
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, path + (name,))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_no_html_is_built_in_f_strings():
    """Pages come from the templates; an f-string with a tag in it would be HTML built in Python."""
    offenders = []
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if "<" in text and ">" in text:
                    offenders.append(f"{name}.py:{node.lineno}")
    assert not offenders, f"HTML in f-strings: {offenders}"


def test_templates_and_style_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = patterns["mcal_utils.report"]
    files = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    assert pages.CSS_PATH.is_file() and (pages.TEMPLATES / pages.NOTEBOOK_TEMPLATE / "index.html.j2").is_file()
    assert files and all(any(fnmatch(f, pat) for pat in shipped) for f in files), (files, shipped)
    assert not (ROOT / "mcal_utils" / "templates").exists()  # the templates live in the package that uses them


def test_python_m_runs_the_command_line_with_the_same_flags():
    out = subprocess.run(
        [sys.executable, "-m", "mcal_utils.report", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    ).stdout
    for flag in (
        "--profile",
        "--notebooks",
        "--out",
        "--only",
        "--timeout",
        "--benchmarks",
        "--require-clean",
        "--strip",
        "--index-only",
    ):
        assert flag in out
