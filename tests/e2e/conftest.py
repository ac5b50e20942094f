"""Headless Debian Chromium, driven by Playwright, trusting the sandbox CA through an NSS database
in a temporary HOME (`certutil` from libnss3-tools; `make browser` installs both), so TLS
verification stays on in the browser too."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from sandbox.testing import SandboxProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def require_tools() -> str:
    """certutil's path; a clear failure (never a skip) when the browser tooling is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (tools/ensure_chromium.sh installs Debian's chromium)")
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil is missing: run `make browser` (tools/ensure_chromium.sh installs libnss3-tools)")
    return certutil


def launch(playwright: Playwright, home: Path) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      env={**os.environ, "HOME": str(home)})


@pytest.fixture(scope="session")
def trusted_home(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose NSS database trusts the sandbox CA, as Chromium on Linux reads it."""
    certutil = require_tools()
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "10kc-sandbox-ca",
                    "-i", str(sandbox.ca_cert)], check=True, capture_output=True)
    return home


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright, trusted_home: Path) -> Iterator[Browser]:
    instance = launch(playwright, trusted_home)
    yield instance
    instance.close()
