"""checkov's Bicep rules pass, with the failures we accept listed in infra/checkov.yaml, each
with its reason; and the list holds no stale entry. checkov exits 0 on a file it cannot parse, so
its parse-error count is checked too (the syntax itself is test_bicep_files.py's job)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA, ROOT

CONFIG = INFRA / "checkov.yaml"


def skipped_checks() -> dict[str, str]:
    """check id -> reason, from the `- CKV_... # reason` lines of skip-check."""
    entries = re.findall(r"^\s*-\s*(CKV\w+)\s*(?:#\s*(.*))?$", CONFIG.read_text(), flags=re.MULTILINE)
    return {check: reason.strip() for check, reason in entries}


def run_checkov(tools_bin: Path, *args: str) -> dict:
    result = subprocess.run(
        [str(tools_bin / "checkov"), "--directory", "infra", "--output", "json", *args],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.stdout.strip(), result.stderr[-2000:]
    report = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


@pytest.fixture(scope="module")
def report_with_config(tools_bin) -> dict:
    return run_checkov(tools_bin, "--config-file", str(CONFIG))


@pytest.fixture(scope="module")
def report_without_skips(tools_bin) -> dict:
    return run_checkov(tools_bin, "--framework", "bicep", "--skip-download", "--quiet")


def test_every_skip_has_a_reason():
    skips = skipped_checks()
    assert skips
    assert all(len(reason) > 20 for reason in skips.values()), skips


def test_checkov_passes_with_the_config(report_with_config):
    summary = report_with_config["summary"]
    failed = [c["check_id"] for c in report_with_config["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0 and summary["resource_count"] > 0
    assert report_with_config["returncode"] == 0


def test_every_skip_is_still_needed_and_nothing_else_fails(report_without_skips):
    failed = {c["check_id"] for c in report_without_skips["results"]["failed_checks"]}
    assert failed == set(skipped_checks())
