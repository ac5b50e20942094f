"""Every Bicep file parses, and the files fit together as a compiler would check: modules exist,
take the parameters they are given, give the outputs that are read; every parameters file sets
only declared parameters, every required one, within its decorators. (No Bicep compiler installs
from the package registries here without downloading itself at run time.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import BICEP_FILES, INFRA, PARAMETER_FILES, ROOT, relative

PLACEHOLDER = "REPLACE-ME"


def test_the_bicep_files_are_the_expected_ones():
    names = {relative(path) for path in BICEP_FILES}
    assert {"infra/main.bicep", "infra/modules/rbac.bicep", "infra/modules/functionapp.bicep"} <= names
    assert PARAMETER_FILES, "one parameters file per environment in infra/parameters/"


@pytest.mark.parametrize("path", [relative(p) for p in BICEP_FILES])
def test_tree_sitter_finds_no_syntax_error(syntax_problems, path):
    assert syntax_problems[path] == []


@pytest.mark.parametrize("path", [relative(p) for p in BICEP_FILES])
def test_pycep_parses_into_a_tree(trees, path):
    assert "error" not in trees[path], trees[path].get("error")
    assert trees[path]["globals"]["scope"]["value"] == "resourceGroup"


def decorator(parameter: dict[str, Any], kind: str) -> Any:
    return next((d["argument"] for d in parameter["decorators"] if d["type"] == kind), None)


def test_every_parameter_has_a_description(trees):
    for path, tree in trees.items():
        for name, parameter in tree.get("parameters", {}).items():
            assert decorator(parameter, "description"), f"{path}: parameter {name} has no @description"


def test_modules_exist_and_are_given_exactly_their_parameters(trees):
    for path, tree in trees.items():
        for symbol, module in tree.get("modules", {}).items():
            assert module["type"] == "local", f"{path}: module {symbol} is not a local file"
            target = relative((ROOT / path).parent / module["detail"]["path"])
            assert target in trees, f"{path}: module {symbol} points at missing {target}"
            declared = trees[target].get("parameters", {})
            given = set(module["config"].get("params", {}))
            assert given <= set(declared), f"{path}: {symbol} gets undeclared {sorted(given - set(declared))}"
            required = {name for name, p in declared.items() if p["default"] is None}
            assert required <= given, f"{path}: {symbol} lacks required {sorted(required - given)}"


def test_module_outputs_that_are_read_exist():
    main = (INFRA / "main.bicep").read_text()
    modules = dict(re.findall(r"^module (\w+) '([^']+)'", main, flags=re.MULTILINE))
    for symbol, output in set(re.findall(r"\b(\w+)\.outputs\.(\w+)", main)):
        source = (INFRA / modules[symbol]).read_text()
        assert re.search(rf"^output {output} ", source, flags=re.MULTILINE), f"{modules[symbol]} has no output {output}"


def check_value(name: str, parameter: dict[str, Any], value: Any) -> None:
    kind = parameter["type"]
    expected = {"string": str, "int": int, "bool": bool, "object": dict, "array": list}[kind]
    assert isinstance(value, expected) and not (kind == "int" and isinstance(value, bool)), f"{name}: not {kind}"
    allowed = decorator(parameter, "allowed")
    assert allowed is None or value in allowed, f"{name}: {value!r} not in {allowed}"
    if kind == "string":
        low, high = decorator(parameter, "min_length"), decorator(parameter, "max_length")
        assert low is None or len(value) >= low, f"{name}: shorter than {low}"
        assert high is None or len(value) <= high, f"{name}: longer than {high}"
    if kind == "int":
        low, high = decorator(parameter, "min_value"), decorator(parameter, "max_value")
        assert low is None or value >= low, f"{name}: below {low}"
        assert high is None or value <= high, f"{name}: above {high}"


@pytest.mark.parametrize("path", PARAMETER_FILES, ids=lambda p: p.name)
def test_parameters_file_fits_main_bicep(main_tree, path: Path):
    document = json.loads(path.read_text())
    assert document["$schema"].endswith("deploymentParameters.json#")
    values = {name: entry["value"] for name, entry in document["parameters"].items()}
    declared = main_tree["parameters"]
    assert set(values) <= set(declared), f"undeclared: {sorted(set(values) - set(declared))}"
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(values), f"missing required: {sorted(required - set(values))}"
    assert values["environmentName"] == path.stem, "the file is named after its environment"
    for name, value in values.items():
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            continue  # deploy.sh refuses to run until it is filled in
        check_value(name, declared[name], value)


def test_parameter_defaults_fit_their_own_decorators(main_tree):
    for name, parameter in main_tree["parameters"].items():
        if parameter["default"] is not None and not isinstance(parameter["default"], dict):
            check_value(name, parameter, parameter["default"])
