"""The layering as a tested contract: import-linter checks the contracts of pyproject.toml [tool.importlinter]
(lake < features < models < compute < jobs < console | airflow_dags; the simulator above nothing but lake), and no
test module imports another (shared helpers live in tests/helpers/)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert "Contracts: " in run.stdout, run.stdout + run.stderr  # it ran and read the contracts
    assert run.returncode == 0, run.stdout[run.stdout.find("Broken contracts") :] or run.stdout + run.stderr


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_no_test_module_imports_another():
    test_modules = {path.stem for path in TESTS.glob("test_*.py")} | {"conftest"}
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in _imported_modules(path)
        if name in test_modules or name.removeprefix("tests.") in test_modules
    ]
    assert offenders == [], "move what they share to tests/helpers/: " + "; ".join(offenders)


def test_the_contract_sees_an_upward_import(tmp_path):
    """The layers contract catches what it is there for: a lake module importing jobs/ fails it."""
    import shutil

    copy = tmp_path / "repo"
    for name in ("lake", "compute", "features", "models", "jobs", "console", "simulator", "airflow_dags"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    (copy / "lake" / "upward.py").write_text("from jobs import cli\n")
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "lake.upward -> jobs.cli" in run.stdout, run.stdout
