"""Fixtures of the infrastructure tests: the Bicep files, their parsed trees, and the tools
environment infra/.venv (made by `make infra-tools`; `make test` makes it first). Without that
environment the tests that need it are skipped on a laptop and fail on CI (CI=true)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TOOLS_BIN = INFRA / ".venv" / "bin"
HELPER = Path(__file__).with_name("bicep_tools.py")
BICEP_FILES = sorted(INFRA.rglob("*.bicep"), key=str)
PARAMETER_FILES = sorted((INFRA / "parameters").glob("*.json"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    if not (TOOLS_BIN / "python").exists() or not (TOOLS_BIN.parent / ".installed").exists():
        # make test installs it (make infra-tools); a missing checker must fail, never skip.
        pytest.fail("the infra tools environment is missing: run `make infra-tools`")
    return TOOLS_BIN


def run_helper(tools: Path, command: str, files: list[Path]) -> dict[str, Any]:
    result = subprocess.run(
        [str(tools / "python"), str(HELPER), command, *map(str, files)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return {relative(Path(name)): value for name, value in json.loads(result.stdout).items()}


@pytest.fixture(scope="session")
def syntax_problems(tools_bin: Path) -> dict[str, list[str]]:
    return run_helper(tools_bin, "syntax", BICEP_FILES)


@pytest.fixture(scope="session")
def trees(tools_bin: Path) -> dict[str, dict[str, Any]]:
    """pycep-parser's JSON tree of every Bicep file, by path relative to the repository."""
    return run_helper(tools_bin, "tree", BICEP_FILES)


@pytest.fixture(scope="session")
def main_tree(trees: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return trees["infra/main.bicep"]


def module_tree(trees: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return trees[f"infra/modules/{name}.bicep"]


def resources_of_type(tree: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        symbol: resource
        for symbol, resource in tree.get("resources", {}).items()
        if resource["type"].lower() == resource_type.lower()
    }


def one_resource(tree: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources_of_type(tree, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def accessor_path(expression: Any) -> str | None:
    """`a.b.c` as pycep writes it (nested property_accessor operators), back to "a.b.c"."""
    if isinstance(expression, str):
        return expression
    if not isinstance(expression, dict):
        return None
    operator = expression.get("operator", {})
    if operator.get("type") != "property_accessor":
        return None
    head = accessor_path(operator["operands"]["operand_1"])
    tail = accessor_path(operator["operands"]["operand_2"])
    return f"{head}.{tail}" if head and tail else None
