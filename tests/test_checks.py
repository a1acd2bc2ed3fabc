"""The static checks CI runs through the README's test command, so a violation fails CI:
mypy (strict on the schemas, agents, factory and tickets; default mode elsewhere), the
import-linter contracts of the layering the README draws (``[tool.importlinter]`` in
``pyproject.toml``), and ruff (lint and format)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*cmd: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_mypy_clean() -> None:
    r = run(sys.executable, "-m", "mypy", "--no-error-summary")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-1000:]


def test_import_contracts_kept() -> None:
    exe = BIN / "lint-imports"
    if not exe.exists():  # an interpreter without console scripts beside it
        found = shutil.which("lint-imports")
        if found is None:
            pytest.fail("lint-imports not installed (pip install -e '.[test]')")
        exe = Path(found)
    r = run(str(exe), "--no-cache")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-1000:]
    assert "0 broken" in r.stdout


def test_ruff_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        r = run(sys.executable, "-m", "ruff", *args)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]


def test_the_contracts_can_fail(tmp_path: Path) -> None:
    """The checker really reads our contracts: a forbidden import added to a copy of the
    schemas is reported (so a green run is not a checker that saw nothing)."""
    import importlinter  # noqa: F401  (installed with the test extras)

    exe = BIN / "lint-imports"
    if not exe.exists():
        pytest.skip("lint-imports not beside this interpreter")
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "engine", tree / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tui", tree / "tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    schemas = tree / "engine" / "schemas.py"
    schemas.write_text(schemas.read_text(encoding="utf-8") + "\nimport engine.bus.client\n")
    r = subprocess.run(
        [str(exe), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": str(BIN), "PYTHONPATH": str(tree)},
    )
    assert r.returncode != 0, r.stdout[-2000:]
    assert "engine.schemas is not allowed to import engine.bus" in r.stdout, r.stdout[-2000:]


MODULE_LINES = 500


def test_no_long_module_without_a_stated_reason() -> None:
    """A module over ~500 lines says why in its docstring ("Why one module of ~N lines: ...");
    anything else is a module to split."""
    import ast

    unexplained = []
    for path in sorted([*ROOT.glob("engine/**/*.py"), *ROOT.glob("tui/**/*.py")]):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MODULE_LINES:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module of" not in doc:
            unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, "over 500 lines with no reason in the docstring: " + ", ".join(
        unexplained
    )
